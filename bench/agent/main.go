// Command agent is the benchmark's ACP agent: a minimal NDJSON JSON-RPC
// peer on stdio that both servers launch through the same mock-acp
// launcher, so the only difference between two runs is the server.
//
// Every request (a line with "method" and "id") is answered at once with a
// result echoing its params. The request method "flood" with params {"n":N}
// first writes N session/update notifications as fast as the pipe takes
// them, then answers {"flooded":N}. Notifications and responses sent to the
// agent are ignored. Output is compact JSON with keys in sorted order, which
// is also how upstream re-serializes, so both servers publish identical
// bytes.
//
// With -flood N the agent writes N notifications and exits without reading
// stdin: the benchmark uses it to measure the raw pipe rate.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
)

type message struct {
	ID     json.RawMessage `json:"id"`
	Method *string         `json:"method"`
	Params json.RawMessage `json:"params"`
}

type floodParams struct {
	N    int `json:"n"`
	Size int `json:"size"`
}

// notification appends flood notification seq to b.
func notification(b []byte, seq int, text []byte) []byte {
	b = append(b, `{"jsonrpc":"2.0","method":"session/update","params":{"seq":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, `,"sessionId":"bench","update":{"content":{"text":"`...)
	b = append(b, text...)
	b = append(b, `","type":"text"},"sessionUpdate":"agent_message_chunk"}}}`...)
	return append(b, '\n')
}

func textOf(size int) []byte {
	if size <= 0 {
		size = 32
	}
	t := make([]byte, size)
	for i := range t {
		t[i] = 'a' + byte(i%26)
	}
	return t
}

func flood(w *bufio.Writer, n int, text []byte) error {
	buf := make([]byte, 0, 256)
	for i := range n {
		buf = notification(buf[:0], i, text)
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	floodN := flag.Int("flood", -1, "write N notifications to stdout and exit")
	size := flag.Int("size", 32, "text bytes per notification (with -flood)")
	help := flag.Bool("help", false, "print usage")
	flag.Parse()
	if *help {
		fmt.Println("bench ACP agent: echoes every request; method flood {n} floods session/update")
		return
	}
	out := bufio.NewWriterSize(os.Stdout, 256<<10)
	if *floodN >= 0 {
		if err := flood(out, *floodN, textOf(*size)); err == nil {
			_ = out.Flush()
		}
		return
	}
	if err := serve(os.Stdin, out); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

func serve(in io.Reader, out *bufio.Writer) error {
	br := bufio.NewReaderSize(in, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if werr := handle(line, out); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func handle(line []byte, out *bufio.Writer) error {
	var m message
	if json.Unmarshal(line, &m) != nil || m.Method == nil || m.ID == nil {
		return nil // notification, client response or junk: nothing to answer
	}
	var result []byte
	if *m.Method == "flood" {
		var p floodParams
		_ = json.Unmarshal(m.Params, &p)
		if err := flood(out, p.N, textOf(p.Size)); err != nil {
			return err
		}
		result = strconv.AppendInt([]byte(`{"flooded":`), int64(p.N), 10)
		result = append(result, '}')
	} else {
		result = m.Params
		if len(result) == 0 || string(result) == "null" {
			result = []byte("{}")
		}
	}
	b := make([]byte, 0, len(m.ID)+len(result)+40)
	b = append(b, `{"id":`...)
	b = append(b, m.ID...)
	b = append(b, `,"jsonrpc":"2.0","result":`...)
	b = append(b, result...)
	b = append(b, "}\n"...)
	if _, err := out.Write(b); err != nil {
		return err
	}
	return out.Flush()
}
