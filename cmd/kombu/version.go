package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
)

func init() {
	register(command{name: "version", summary: "print the version (also: kombu --version)", run: runVersion})
}

// version is set at link time (-ldflags "-X main.version=v1.2.3"); empty,
// the module version from the build information is used.
var version = ""

// versionJSON is `kombu version --json` (a contract: fields are only ever
// added).
type versionJSON struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
}

func buildVersion() versionJSON {
	v := versionJSON{Version: version, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	return v
}

func runVersion(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "version", "[--json]")
	jsonOut := fs.Bool("json", false, "print a JSON object")
	fs.BoolP("version", "V", false, "the same as the version command")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr(e, fs, "version takes no arguments")
	}
	v := buildVersion()
	if *jsonOut {
		return writeJSON(e.stdout, v)
	}
	rev := ""
	if v.Revision != "" {
		rev = " " + v.Revision
		if len(v.Revision) > 12 {
			rev = " " + v.Revision[:12]
		}
		if v.Modified {
			rev += "+dirty"
		}
	}
	fmt.Fprintf(e.stdout, "kombu %s%s %s %s/%s\n", v.Version, rev, v.Go, v.OS, v.Arch)
	return nil
}

func writeJSON(w interface{ Write([]byte) (int, error) }, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
