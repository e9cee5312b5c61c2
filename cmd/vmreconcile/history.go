package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/internal/textsafe"
	"github.com/vmreconcile/vmreconcile/store"
)

func init() { register("history", func() command { return &historyCmd{} }) }

// historyCmd is `vmreconcile history NODE|VM`: the timeline the store keeps.
type historyCmd struct {
	storePath  string
	configFile string
	json       bool
	fs         *flag.FlagSet
}

func (cmd *historyCmd) Register(ctx context.Context, f *flag.FlagSet) {
	f.StringVar(&cmd.storePath, "store", "", "History store file (default: store.path of -config, else "+config.DefaultStorePath()+")")
	f.StringVar(&cmd.configFile, "config", os.Getenv("VMRECONCILE_CONFIG"), "Config file to read store.path from [VMRECONCILE_CONFIG]")
	f.BoolVar(&cmd.json, "json", false, "Print the timeline as JSON")
	cmd.fs = f
}

func (cmd *historyCmd) Process(ctx context.Context) error { return nil }

func (cmd *historyCmd) Usage() string { return "NODE|VM" }

func (cmd *historyCmd) Description() string {
	return `Print what the store knows about a swarm node or a VM, in time order.

NODE is a node ID (or a unique prefix, or a hostname a node reported); VM is a
VM name or managed object ref (vm-42). The timeline shows the identities the
node presented and which VMs they matched, findings opening and resolving,
lineage, remediation journal entries and guest probes.

The store is opened read-only: this works while the daemon runs.

Examples:
  vmreconcile history -store /var/lib/vmreconcile/state.db wk-01
  vmreconcile history 4t3xk2 -json | jq '.[] | select(.kind=="finding-opened")'`
}

func (cmd *historyCmd) Run(ctx context.Context, args []string) error {
	subject := args
	if len(subject) != 1 {
		return usagef("want one NODE or VM, got %d arguments (fix: vmreconcile history [-store PATH] [-json] NODE|VM)", len(subject))
	}
	path := cmd.storePath
	if path == "" {
		cfg, err := config.Load(cmd.configFile)
		if err != nil {
			return err
		}
		path = cfg.Store.Path
	}
	st, err := store.Open(path, store.Options{ReadOnly: true})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return usagef("store %s does not exist (fix: -store PATH of the daemon's store.path)", path)
		}
		return err
	}
	defer st.Close()
	entries, err := st.Timeline(ctx, subject[0])
	switch {
	case errors.Is(err, store.ErrNotFound):
		return usagef("no node or VM %q in %s (fix: a node ID, VM name or VM ref the daemon has seen)", subject[0], path)
	case errors.Is(err, store.ErrAmbiguous):
		return usagef("%s", strings.TrimPrefix(err.Error(), "store: "))
	case err != nil:
		return err
	}
	if cmd.json {
		enc := json.NewEncoder(out.stdout)
		enc.SetIndent("", "  ")
		if entries == nil {
			entries = []store.TimelineEntry{}
		}
		return enc.Encode(entries)
	}
	if len(entries) == 0 {
		fmt.Fprintf(out.stdout, "%s: nothing recorded\n", subject[0])
		return nil
	}
	tw := tabwriter.NewWriter(out.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tEVENT\tDETAIL")
	for _, e := range entries {
		when := e.Time.Local().Format("2006-01-02 15:04:05")
		if !e.End.IsZero() && !e.End.Equal(e.Time) {
			when += " .. " + e.End.Local().Format(timeOnlyOrDate(e.Time, e.End))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", when, textsafe.Term(e.Kind), textsafe.Term(oneLine(e.Text)))
	}
	return tw.Flush()
}

// timeOnlyOrDate shortens an end time on the same day as start.
func timeOnlyOrDate(start, end time.Time) string {
	if y1, m1, d1 := start.Local().Date(); true {
		if y2, m2, d2 := end.Local().Date(); y1 == y2 && m1 == m2 && d1 == d2 {
			return "15:04:05"
		}
	}
	return "2006-01-02 15:04:05"
}
