package fakesandbox

import (
	"bytes"
	"os"
	"strconv"
)

// marked lists the live processes whose environment has entry, the
// sandbox's marker. Every command a sandbox runs carries it and so does
// everything they start, including daemons that left the command's process
// group with setsid: the marker is how the fake finds "the sandbox's
// processes" as a VM or container boundary would. Zombies have an empty
// environ and are not listed.
func marked(entry string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := []byte(entry)
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for kv := range bytes.SplitSeq(b, []byte{0}) {
			if bytes.Equal(kv, want) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
