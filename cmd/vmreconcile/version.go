package main

import (
	"context"
	"flag"
	"fmt"
	"runtime/debug"
	"strings"
)

func init() { register("version", func() command { return &version{} }) }

// buildVersion overrides the version from the build info when set with
// -ldflags "-X main.buildVersion=v1.2.3" (make build sets git describe).
var buildVersion = ""

type version struct{}

func (cmd *version) Register(ctx context.Context, f *flag.FlagSet) {}
func (cmd *version) Process(ctx context.Context) error             { return nil }
func (cmd *version) Usage() string                                 { return "" }
func (cmd *version) Description() string {
	return `Print the version of vmreconcile and of its vSphere and Docker libraries.

The version is the module's (go install ...@v1.2.3), else the git revision
the binary was built from; vmreconcile --version prints the same.`
}

func (cmd *version) Run(ctx context.Context, args []string) error {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintf(out.stdout, "vmreconcile %s\n", versionOf(nil))
		return nil
	}
	fmt.Fprintf(out.stdout, "vmreconcile %s\n  %s %s/%s\n", versionOf(bi), bi.GoVersion, setting(bi, "GOOS"), setting(bi, "GOARCH"))
	if rev := setting(bi, "vcs.revision"); rev != "" {
		line := "  commit " + rev
		if t := setting(bi, "vcs.time"); t != "" {
			line += " (" + t + ")"
		}
		if setting(bi, "vcs.modified") == "true" {
			line += ", with uncommitted changes"
		}
		fmt.Fprintln(out.stdout, line)
	}
	for _, d := range bi.Deps {
		switch d.Path {
		case "github.com/vmware/govmomi", "github.com/docker/docker":
			fmt.Fprintf(out.stdout, "  %s %s\n", d.Path, d.Version)
		}
	}
	return nil
}

// versionOf is the version to report: -X main.buildVersion; else the main
// module's version (go install module@version, or the pseudo-version go
// derives from git); else the git revision; else "(devel)".
func versionOf(bi *debug.BuildInfo) string {
	if buildVersion != "" {
		return buildVersion
	}
	if bi == nil {
		return "(unknown)"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	if rev := setting(bi, "vcs.revision"); rev != "" {
		v := "devel-" + rev[:min(12, len(rev))]
		if setting(bi, "vcs.modified") == "true" {
			v += "-dirty"
		}
		return v
	}
	return "(devel)"
}

func setting(bi *debug.BuildInfo, key string) string {
	for _, s := range bi.Settings {
		if s.Key == key {
			return strings.TrimSpace(s.Value)
		}
	}
	return ""
}
