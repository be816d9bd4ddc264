package amqp

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
)

func frame(typ byte, payload []byte) []byte {
	b := []byte{typ, 0, 1, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[3:], uint32(len(payload)))
	b = append(b, payload...)
	return append(b, 0xCE)
}

func shortstr(s string) []byte { return append([]byte{byte(len(s))}, s...) }

func longbytes(tag byte, body []byte) []byte {
	b := []byte{tag, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(body)))
	return append(b, body...)
}

func pyLong(tag byte, v int64) []byte {
	b := []byte{tag, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint64(b[1:], uint64(v))
	return b
}

// pyamqpHeaderFrame is a content header as pyamqp writes it for headers
// {"big": 2**40, "list": [2**41, {"x": 2**42}], "s": "L", "n": 7}.
func pyamqpHeaderFrame() []byte { return headerFrameWith('L') }

// headerFrameWith writes the 8-byte integers with tag.
func headerFrameWith(tag byte) []byte {
	var inner []byte
	inner = append(inner, shortstr("x")...)
	inner = append(inner, pyLong(tag, 1<<42)...)
	var arr []byte
	arr = append(arr, pyLong(tag, 1<<41)...)
	arr = append(arr, longbytes('F', inner)...)
	var table []byte
	table = append(table, shortstr("big")...)
	table = append(table, pyLong(tag, 1<<40)...)
	table = append(table, shortstr("list")...)
	table = append(table, longbytes('A', arr)...)
	table = append(table, shortstr("s")...)
	table = append(table, longbytes('S', []byte("L"))...)
	table = append(table, shortstr("n")...)
	table = append(table, 'I', 0, 0, 0, 7)
	p := []byte{0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5}
	p = append(p, 0xE0, 0x00) // content-type, content-encoding, headers
	p = append(p, shortstr("application/json")...)
	p = append(p, shortstr("utf-8")...)
	p = append(p, longbytes('F', table)[1:]...)
	return frame(frameTypeHeader, p)
}

func fixAll(in []byte, chunks []int) []byte {
	var f frameFixer
	b := append([]byte(nil), in...)
	for _, n := range chunks {
		if n > len(b) {
			n = len(b)
		}
		f.feed(b[:n])
		b = b[n:]
	}
	f.feed(b)
	return f.out
}

func TestFrameFixRewritesL(t *testing.T) {
	method := frame(1, []byte{0, 60, 0, 60, 'L', 'L'}) // basic.deliver-ish: untouched
	body := frame(3, []byte("LLLL"))                   // body: untouched
	heartbeat := frame(8, nil)
	hdr := pyamqpHeaderFrame()
	in := bytes.Join([][]byte{method, hdr, body, heartbeat, hdr}, nil)
	want := bytes.Join([][]byte{method, headerFrameWith('l'), body, heartbeat, headerFrameWith('l')}, nil)
	got := fixAll(in, nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("one shot:\n got %x\nwant %x", got, want)
	}
	// The string value "L" and the method and body frames keep theirs.
	if bytes.Count(got, []byte{'L'}) != bytes.Count(in, []byte{'L'})-6 {
		t.Fatalf("expected exactly 6 rewrites")
	}
	for size := 1; size < 40; size++ {
		var chunks []int
		for i := 0; i < len(in); i += size {
			chunks = append(chunks, size)
		}
		if got := fixAll(in, chunks); !bytes.Equal(got, want) {
			t.Fatalf("chunks of %d differ", size)
		}
	}
}

func TestFrameFixPassesProtocolHeader(t *testing.T) {
	in := []byte("AMQP\x00\x00\x09\x01")
	if got := fixAll(in, []int{3}); !bytes.Equal(got, in) {
		t.Fatalf("got %q", got)
	}
}

func TestFixConnRead(t *testing.T) {
	server, client := net.Pipe()
	defer server.Close()
	fc := newFixConn(client, false)
	defer fc.Close()
	hdr := pyamqpHeaderFrame()
	go func() {
		for _, b := range hdr {
			server.Write([]byte{b})
		}
		server.Close()
	}()
	got, err := io.ReadAll(fc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, headerFrameWith('l')) {
		t.Fatalf("read %x", got)
	}
}

// FuzzFrameFixer: any byte stream, cut anywhere, comes out the same length,
// identical except for 'L' turned into 'l', and the cuts do not matter.
func FuzzFrameFixer(f *testing.F) {
	f.Add(pyamqpHeaderFrame(), uint8(3))
	f.Add(frame(frameTypeHeader, []byte{0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x20, 0, 0, 0, 0, 9, 1, 'k', 'L', 0, 0, 0, 0, 0, 0, 0}), uint8(1))
	f.Add([]byte{2, 0, 0, 0, 0, 0, 2, 0}, uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		whole := fixAll(data, nil)
		if len(whole) > len(data) {
			t.Fatalf("output longer than input")
		}
		for i := range whole {
			if whole[i] != data[i] && !(data[i] == 'L' && whole[i] == 'l') {
				t.Fatalf("byte %d changed from %q to %q", i, data[i], whole[i])
			}
		}
		n := int(cut) + 1
		var chunks []int
		for i := 0; i < len(data); i += n {
			chunks = append(chunks, n)
		}
		if cutOut := fixAll(data, chunks); !bytes.Equal(cutOut, whole) {
			t.Fatalf("chunking changed the output")
		}
		// A valid frame around the data, as a header payload, never panics.
		fixAll(frame(frameTypeHeader, data), []int{n})
	})
}

// tuneFrame is the broker's connection.tune: channel_max 2047, frame_max
// 131072, heartbeat 60.
func tuneFrame() []byte {
	p := []byte{0, 10, 0, 30, 0x07, 0xFF, 0, 0x02, 0, 0, 0, 60}
	b := frame(1, p)
	b[1], b[2] = 0, 0 // channel 0
	return b
}

// TestFixerZeroesTuneHeartbeat: with heartbeats off, the broker's
// connection.tune reaches amqp091 with heartbeat 0, however the bytes are
// split; other frames and the other fields pass unchanged.
func TestFixerZeroesTuneHeartbeat(t *testing.T) {
	start := frame(1, append([]byte{0, 10, 0, 10, 0, 9}, longbytes('F', nil)[1:]...)) // connection.start-ish
	start[1], start[2] = 0, 0
	in := append(append([]byte{}, start...), tuneFrame()...)
	in = append(in, tuneFrame()...) // a second tune is not touched
	want := append(append([]byte{}, start...), tuneFrame()...)
	want[len(start)+7+10], want[len(start)+7+11] = 0, 0
	want = append(want, tuneFrame()...)
	for chunk := 1; chunk <= len(in); chunk++ {
		f := frameFixer{noHeartbeat: true}
		for i := 0; i < len(in); i += chunk {
			f.feed(in[i:min(i+chunk, len(in))])
		}
		if !bytes.Equal(f.out, want) {
			t.Fatalf("chunk %d:\n got %x\nwant %x", chunk, f.out, want)
		}
	}
	f := frameFixer{}
	f.feed(tuneFrame())
	if !bytes.Equal(f.out, tuneFrame()) {
		t.Fatal("without noHeartbeat the tune frame must pass unchanged")
	}
}
