package main

import (
	"context"
	"flag"
	"fmt"
	"runtime/debug"
)

func init() { register("version", func() command { return &version{} }) }

// version is set by `make build` (-ldflags -X main.buildVersion=...).
var buildVersion = "dev"

type version struct{}

func (cmd *version) Register(ctx context.Context, f *flag.FlagSet) {}
func (cmd *version) Process(ctx context.Context) error             { return nil }
func (cmd *version) Usage() string                                 { return "" }
func (cmd *version) Description() string {
	return "Print the version of vmreconcile and of its vSphere and Docker libraries."
}

func (cmd *version) Run(ctx context.Context, args []string) error {
	fmt.Fprintf(out.stdout, "vmreconcile %s\n", buildVersion)
	if bi, ok := debug.ReadBuildInfo(); ok {
		fmt.Fprintf(out.stdout, "  %s\n", bi.GoVersion)
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/vmware/govmomi", "github.com/docker/docker":
				fmt.Fprintf(out.stdout, "  %s %s\n", d.Path, d.Version)
			}
		}
	}
	return nil
}
