package compression_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/kombu-go/kombu/messaging/compression"
)

// TestPythonVectors decodes bytes that Python's compressors wrote (see
// vectors_test.go), by alias and by content type.
func TestPythonVectors(t *testing.T) {
	r := compression.Default()
	for _, v := range pyVectors {
		t.Run(v.name, func(t *testing.T) {
			for _, key := range []string{v.name, v.contentType} {
				got, err := r.Decompress(mustHex(v.payload), key)
				if err != nil {
					t.Fatalf("Decompress(%s): %v", key, err)
				}
				if !bytes.Equal(got, pyPayload) {
					t.Fatalf("Decompress(%s) = %q", key, got)
				}
			}
			got, err := r.Decompress(mustHex(v.empty), v.contentType)
			if err != nil || len(got) != 0 {
				t.Fatalf("empty vector: %q, %v", got, err)
			}
		})
	}
}

// pyDecode is run by /usr/bin/python3: it reads {"module": base64} on stdin,
// decompresses each with the function Kombu uses, and prints
// {"module": base64 | "missing"}.
const pyDecode = `
import base64, importlib, json, sys
funcs = {"zlib": "zlib", "bz2": "bz2", "lzma": "lzma", "brotli": "brotli", "zstd": "zstandard"}
out = {}
for name, data in json.load(sys.stdin).items():
    try:
        mod = importlib.import_module(funcs[name])
    except ImportError:
        out[name] = "missing"
        continue
    raw = base64.b64decode(data)
    if name == "zstd":
        res = mod.ZstdDecompressor().decompress(raw)
    else:
        res = mod.decompress(raw)
    out[name] = base64.b64encode(res).decode()
json.dump(out, sys.stdout)
`

// TestPythonDecodesOurOutput runs Python's decompressors on this package's
// output. It needs python3; brotli and zstandard are optional modules, and
// their subtests skip when Python lacks them (fail with
// KOMBU_REQUIRE_BROKERS=1, as CI runs: scripts/test.sh installs them).
func TestPythonDecodesOurOutput(t *testing.T) {
	py, err := findPython()
	if err != nil {
		t.Skip("python3 not found: cannot check that Python decodes our output")
	}
	in := append(bytes.Repeat([]byte("kombu interop "), 300), pyPayload...)
	modules := map[string]string{
		"zlib": "gzip", "bz2": "bzip2", "lzma": "xz", "brotli": "brotli", "zstd": "zstd",
	}
	req := map[string]string{}
	for mod, alias := range modules {
		out, _, err := compression.Default().Compress(in, alias)
		if err != nil {
			t.Fatal(err)
		}
		req[mod] = base64.StdEncoding.EncodeToString(out)
	}
	reqJSON, _ := json.Marshal(req)
	cmd := exec.Command(py, "-c", pyDecode)
	cmd.Stdin = bytes.NewReader(reqJSON)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	outJSON, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, stderr.String())
	}
	var resp map[string]string
	if err := json.Unmarshal(outJSON, &resp); err != nil {
		t.Fatalf("python3 output %q: %v", outJSON, err)
	}
	for mod := range modules {
		t.Run(mod, func(t *testing.T) {
			got, ok := resp[mod]
			switch {
			case !ok:
				t.Fatal("no answer from python")
			case got == "missing" && os.Getenv("KOMBU_REQUIRE_BROKERS") == "1":
				t.Fatalf("python3 has no %s module (apt-get install python3-brotli python3-zstandard; KOMBU_REQUIRE_BROKERS=1 requires it)", mod)
			case got == "missing":
				t.Skipf("python3 has no %s module (apt-get install python3-brotli python3-zstandard)", mod)
			}
			dec, err := base64.StdEncoding.DecodeString(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(dec, in) {
				t.Fatalf("python decoded %d bytes, want %d", len(dec), len(in))
			}
		})
	}
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
