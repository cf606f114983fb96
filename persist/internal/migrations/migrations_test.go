package migrations

import (
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	ms, err := Load(fstest.MapFS{
		"m/0002_b.sql": {Data: []byte("B")},
		"m/0001_a.sql": {Data: []byte("A")},
		"m/0010_c.sql": {Data: []byte("C")},
	}, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[0].Name != "0001_a" || ms[1].Version != 2 || ms[2].SQL != "C" {
		t.Fatalf("%+v", ms)
	}
	if _, err := Load(fstest.MapFS{"m/init.sql": {}}, "m"); err == nil {
		t.Fatal("a badly named file must be an error")
	}
}
