package resp_test

import (
	"strings"
	"testing"

	"github.com/kombu-go/kombu/internal/resp"
)

// jsonBody is a 300-byte Kombu envelope, the payload of a typical BRPOP
// reply.
var jsonBody = func() string {
	s := `{"body": "eyJoZWxsbyI6ICJ3b3JsZCJ9", "content-encoding": "utf-8", "content-type": "application/json", ` +
		`"headers": {}, "properties": {"delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, ` +
		`"priority": 0, "body_encoding": "base64", "delivery_tag": "`
	s += strings.Repeat("7", 300-len(s)-3) + `"}}`
	return s
}()

func drain(b *testing.B, r *resp.Reader) int {
	n := 0
	for {
		v, ok, err := r.Next()
		if err != nil {
			b.Fatal(err)
		}
		if !ok {
			return n
		}
		if len(v.Elems) < 2 {
			b.Fatalf("unexpected reply %v", v)
		}
		n++
	}
}

// BenchmarkReaderBRPOPReply: one [key, 300-byte JSON] reply per read.
func BenchmarkReaderBRPOPReply(b *testing.B) {
	msg := []byte("*2\r\n" + bs("celery") + bs(jsonBody))
	var r resp.Reader
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		r.Feed(msg)
		if drain(b, &r) != 1 {
			b.Fatal("no reply")
		}
	}
}

// BenchmarkReaderBRPOPReplySplit: the same reply arriving in two reads,
// split inside the JSON body.
func BenchmarkReaderBRPOPReplySplit(b *testing.B) {
	msg := []byte("*2\r\n" + bs("celery") + bs(jsonBody))
	var r resp.Reader
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		r.Feed(msg[:100])
		drain(b, &r)
		r.Feed(msg[100:])
		if drain(b, &r) != 1 {
			b.Fatal("no reply")
		}
	}
}

// BenchmarkReaderPMessageBatch: 200 RESP3 pmessage pushes per 64 KiB-ish
// read, the fanout consumer's busy case.
func BenchmarkReaderPMessageBatch(b *testing.B) {
	one := ">4\r\n" + bs("pmessage") + bs("/0.fanout.*") + bs("/0.fanout.key") + bs(jsonBody)
	msg := []byte(strings.Repeat(one, 200))
	var r resp.Reader
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		r.Feed(msg)
		if drain(b, &r) != 200 {
			b.Fatal("short batch")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*200), "ns/reply")
}

// BenchmarkReaderBRPOPReplyClone: parse and keep the reply (Clone).
func BenchmarkReaderBRPOPReplyClone(b *testing.B) {
	msg := []byte("*2\r\n" + bs("celery") + bs(jsonBody))
	var r resp.Reader
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		r.Feed(msg)
		v, ok, err := r.Next()
		if !ok || err != nil {
			b.Fatal(ok, err)
		}
		_ = v.Clone()
	}
}

// BenchmarkAppendCommand: a Kombu BRPOP over two queues and three priority
// steps, into a reused buffer.
func BenchmarkAppendCommand(b *testing.B) {
	args := []string{"BRPOP", "qb", "qa", "qb\x06\x163", "qa\x06\x163", "qb\x06\x166", "qa\x06\x166",
		"qb\x06\x169", "qa\x06\x169", "1"}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = resp.AppendCommand(buf[:0], args...)
	}
	b.SetBytes(int64(len(buf)))
}
