package rediscluster

import (
	"context"
	"math/rand/v2"
	"testing"
)

// randomKeys returns n keys with a fixed seed: arbitrary bytes, braces in
// every position, and tagged keys.
func randomKeys(n int) []string {
	r := rand.New(rand.NewPCG(15, 6))
	alphabet := []byte("ab{}{}\x00\xffxyz019")
	keys := make([]string, 0, n)
	for len(keys) < n {
		b := make([]byte, r.IntN(24))
		for i := range b {
			if r.IntN(3) == 0 {
				b[i] = byte(r.IntN(256))
			} else {
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
		}
		keys = append(keys, string(b))
		if r.IntN(4) == 0 {
			keys = append(keys, "{q"+string(b)+"}.unacked")
		}
	}
	return keys[:n]
}

// checkKeyslot compares Slot with CLUSTER KEYSLOT of the node at addr for
// 5,000 keys.
func checkKeyslot(t *testing.T, addr string) {
	cn, err := dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.close()
	keys := randomKeys(5000)
	for start := 0; start < len(keys); start += 500 {
		batch := keys[start:min(start+500, len(keys))]
		cmds := make([][]string, len(batch))
		for i, k := range batch {
			cmds[i] = []string{"CLUSTER", "KEYSLOT", k}
		}
		vs, err := cn.pipeline(context.Background(), cmds...)
		if err != nil {
			t.Fatal(err)
		}
		for i, k := range batch {
			if got := Slot(k); got != int(vs[i].Int) {
				t.Errorf("Slot(%q) = %d, CLUSTER KEYSLOT says %d", k, got, vs[i].Int)
			}
		}
	}
}
