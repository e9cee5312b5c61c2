// Command vmreconcile matches vSphere VMs against Docker Swarm nodes and
// reports VMs that impersonate a node (clones that share a node ID), VMs that
// run Docker while they are templates or un-generalized clones, and, only when
// asked, fixes them through vSphere guest operations.
//
// Commands follow govc's style: one command per file, single-dash flags, a
// flag struct per command with Register and Process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/vmreconcile/vmreconcile/internal/textsafe"
)

// command is one subcommand.
type command interface {
	// Register declares the command's flags.
	Register(ctx context.Context, f *flag.FlagSet)
	// Process validates the parsed flags, before any work.
	Process(ctx context.Context) error
	// Run does the work; args are the positional arguments.
	Run(ctx context.Context, args []string) error
	// Usage is the one-line argument synopsis; Description explains the command.
	Usage() string
	Description() string
}

var commands = map[string]func() command{}

func register(name string, newCmd func() command) { commands[name] = newCmd }

// streams lets tests capture output.
type streams struct {
	stdout, stderr io.Writer
}

var out = streams{stdout: os.Stdout, stderr: os.Stderr}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// run dispatches to a subcommand and maps its error to an exit code.
func run(ctx context.Context, args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "--version", "-version":
			args = append([]string{"version"}, args[1:]...)
		case "help", "-h", "-help", "--help":
			if len(args) > 1 && args[0] == "help" {
				// "help audit" is "audit -h", as git and docker take it.
				return run(ctx, append(slices.Clone(args[1:]), "-h"))
			}
		}
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(out.stderr)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	name, args, ok := lookup(args)
	if !ok {
		return unknownCommand(name, args)
	}
	cmd := commands[name]()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cmd.Register(ctx, fs)
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandUsage(out.stderr, name, cmd, fs)
			return ExitOK
		}
		fmt.Fprintf(out.stderr, "vmreconcile %s: %s (fix: see 'vmreconcile %s -h')\n", name, textsafe.Term(redact(oneLine(err.Error()))), name)
		return ExitUsage
	}
	err = cmd.Process(ctx)
	if err == nil {
		err = cmd.Run(ctx, rest)
	}
	return finish(name, err)
}

// lookup finds the command args name: "audit", or a group's subcommand
// "config validate". It returns the command's name and its arguments; for
// an unknown command, the name given and ok false.
func lookup(args []string) (name string, rest []string, ok bool) {
	if _, ok := commands[args[0]]; ok {
		return args[0], args[1:], true
	}
	if len(args) > 1 {
		if _, ok := commands[args[0]+" "+args[1]]; ok {
			return args[0] + " " + args[1], args[2:], true
		}
	}
	return args[0], args[1:], false
}

// unknownCommand says what exists: the commands, or a group's subcommands
// ("vmreconcile config" alone, or "config -h").
func unknownCommand(name string, args []string) int {
	if subs := subcommands(name); len(subs) > 0 {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			groupUsage(out.stderr, name, subs)
			return ExitOK
		}
		if len(args) == 0 {
			groupUsage(out.stderr, name, subs)
			return ExitUsage
		}
		fmt.Fprintf(out.stderr, "vmreconcile %s: unknown command %q (fix: one of %s)\n", name, args[0], strings.Join(subs, ", "))
		return ExitUsage
	}
	fmt.Fprintf(out.stderr, "vmreconcile: unknown command %q (fix: one of %s)\n", name, strings.Join(commandNames(), ", "))
	return ExitUsage
}

// subcommands lists the subcommands of group ("validate", "defaults").
func subcommands(group string) []string {
	var subs []string
	for _, n := range commandNames() {
		if sub, ok := strings.CutPrefix(n, group+" "); ok {
			subs = append(subs, sub)
		}
	}
	return subs
}

func groupUsage(w io.Writer, group string, subs []string) {
	fmt.Fprintf(w, "Usage: vmreconcile %s COMMAND [OPTIONS]\n\nCommands:\n", group)
	for _, s := range subs {
		fmt.Fprintf(w, "  %-10s %s\n", s, firstLine(commands[group+" "+s]().Description()))
	}
	fmt.Fprintf(w, "\nRun 'vmreconcile %s COMMAND -h' for a command's options.\n", group)
}

// finish prints err as one line (secrets redacted) and returns its exit code.
func finish(name string, err error) int {
	if err == nil {
		return ExitOK
	}
	code := exitCode(err)
	var f *findingsError
	if errors.As(err, &f) {
		return code // the report already said it
	}
	fmt.Fprintf(out.stderr, "vmreconcile %s: %s\n", name, textsafe.Term(redact(oneLine(err.Error()))))
	return code
}

// parseInterleaved parses flags that may follow positional arguments
// ("preclone wk-07 -apply", "history wk-01 -json"), as docker and kubectl
// allow; "--" ends the flags. It returns the positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func commandNames() []string {
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: vmreconcile COMMAND [OPTIONS]")
	fmt.Fprintln(w, "\nMatches vSphere VMs against Docker Swarm nodes and finds VMs that impersonate a node.")
	fmt.Fprintln(w, "\nCommands:")
	for _, n := range commandNames() {
		fmt.Fprintf(w, "  %-16s %s\n", n, firstLine(commands[n]().Description()))
	}
	fmt.Fprintln(w, "\nRun 'vmreconcile COMMAND -h' for a command's options.")
}

func commandUsage(w io.Writer, name string, cmd command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: vmreconcile %s [OPTIONS] %s\n\n%s\n\nOptions:\n", name, cmd.Usage(), cmd.Description())
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
