package serializer_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging/serializer"
)

// pyLoads is run by python3: for each {"ct", "ce", "body"} it calls Kombu's
// own kombu.serialization.loads (with every serializer enabled) and prints
// the result as canonical JSON (sorted keys, bytes as {"$bytes": hex}), or
// "missing" when kombu cannot be imported.
const pyLoads = `
import base64, json, sys
try:
    from kombu.serialization import loads, enable_insecure_serializers
except ImportError:
    print(json.dumps("missing")); sys.exit(0)
enable_insecure_serializers(["yaml", "msgpack"])
def conv(v):
    if isinstance(v, bytes):
        return {"$bytes": v.hex()}
    if isinstance(v, dict):
        return {str(k): conv(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [conv(x) for x in v]
    return v
out = []
for m in json.load(sys.stdin):
    try:
        out.append(json.dumps(conv(loads(base64.b64decode(m["body"]), m["ct"], m["ce"])), sort_keys=True))
    except Exception as e:
        out.append("ERROR " + type(e).__name__ + ": " + str(e))
print(json.dumps(out))
`

// TestKombuReadsOurOutput has Python Kombu decode what Dumps writes. It
// skips when python3 or its kombu module is missing.
func TestKombuReadsOurOutput(t *testing.T) {
	py, err := findPython()
	if err != nil {
		t.Skip("python3 not found: cannot check that Kombu reads our output")
	}
	celery := []any{[]any{2, 3}, map[string]any{}, map[string]any{"callbacks": nil, "errbacks": nil, "chain": nil, "chord": nil}}
	cases := []struct {
		v          any
		serializer string
		want       string // json.dumps(decoded, sort_keys=True) in Python
	}{
		{celery, "json", `[[2, 3], {}, {"callbacks": null, "chain": null, "chord": null, "errbacks": null}]`},
		{map[string]any{"s": "café <&>", "n": 1.5, "t": true}, "json", `{"n": 1.5, "s": "caf\u00e9 <&>", "t": true}`},
		{time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC), "json", `"2024-01-02T03:04:05.123456Z"`},
		{map[string]any{"b": []byte{0, 0xff}, "s": "x", "i": 300}, "msgpack", `{"b": {"$bytes": "00ff"}, "i": 300, "s": "x"}`},
		{map[string]any{"k": []any{1, "two"}}, "yaml", `{"k": [1, "two"]}`},
		{"héllo", "", `"h\u00e9llo"`},
		{[]byte{1, 2}, "", `{"$bytes": "0102"}`},
		{"text", "raw", `"text"`},
	}
	var msgs []map[string]string
	for _, c := range cases {
		ct, ce, body, err := serializer.Default().Dumps(c.v, c.serializer)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, map[string]string{"ct": ct, "ce": ce, "body": base64.StdEncoding.EncodeToString(body)})
	}
	in, _ := json.Marshal(msgs)
	cmd := exec.Command(py, "-c", pyLoads)
	cmd.Stdin = bytes.NewReader(in)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, stderr.String())
	}
	var missing string
	if json.Unmarshal(out, &missing) == nil && missing == "missing" {
		t.Skip("python3 has no kombu module")
	}
	var got []string
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(cases) {
		t.Fatalf("python3 output %q: %v", out, err)
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%d-%s", i, c.serializer), func(t *testing.T) {
			if lib := pyLibMissing(got[i]); lib != "" {
				if os.Getenv("KOMBU_REQUIRE_BROKERS") == "1" {
					t.Fatalf("Kombu lacks %s (apt-get install python3-msgpack python3-yaml; KOMBU_REQUIRE_BROKERS=1 requires it)", lib)
				}
				t.Skipf("Kombu lacks %s (apt-get install python3-msgpack python3-yaml)", lib)
			}
			if got[i] != c.want {
				t.Errorf("Kombu decoded %s, want %s", got[i], c.want)
			}
		})
	}
}

// pyLibMissing returns the serializer library Kombu reported missing in a
// decode result ("ERROR SerializerNotInstalled: ..."), or "".
func pyLibMissing(result string) string {
	if !strings.HasPrefix(result, "ERROR SerializerNotInstalled") {
		return ""
	}
	for _, lib := range []string{"msgpack", "yaml"} { // Kombu writes "YAML"
		if strings.Contains(strings.ToLower(result), lib) {
			return lib
		}
	}
	return "a serializer library"
}

// findPython prefers Debian's /usr/bin/python3, where apt installs the
// Python modules these tests use (python3-kombu, python3-brotli,
// python3-zstandard), over whatever python3 comes first on PATH.
func findPython() (string, error) {
	if p, err := exec.LookPath("/usr/bin/python3"); err == nil {
		return p, nil
	}
	return exec.LookPath("python3")
}
