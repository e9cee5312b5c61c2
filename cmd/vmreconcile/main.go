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
	"sort"
	"strings"
	"syscall"
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
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(out.stderr)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	name := args[0]
	newCmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(out.stderr, "vmreconcile: unknown command %q (fix: one of %s)\n", name, strings.Join(commandNames(), ", "))
		return ExitUsage
	}
	// Before Register: govc's ClientFlag reads GOVC_PERSIST_SESSION when it
	// registers -persist-session, so the default must be in place by then.
	persistOff()
	cmd := newCmd()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cmd.Register(ctx, fs)
	badURL := guardURLFlag(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandUsage(out.stderr, name, cmd, fs)
			return ExitOK
		}
		if *badURL {
			// The flag package's message quotes the value, and url.Parse's
			// quotes it again (or a piece of it, ":pa" of "user:pa/ss@h"):
			// an unencoded password would be printed. Say what to do instead.
			fmt.Fprintf(out.stderr, "vmreconcile %s: -u: %s\n", name, urlParseFix)
			return ExitUsage
		}
		fmt.Fprintf(out.stderr, "vmreconcile %s: %s (fix: see 'vmreconcile %s -h')\n", name, redact(err.Error()), name)
		return ExitUsage
	}
	err := cmd.Process(ctx)
	if err == nil {
		err = cmd.Run(ctx, fs.Args())
	}
	return report(name, err)
}

// report prints err as one line (secrets redacted) and returns its exit code.
func report(name string, err error) int {
	if err == nil {
		return ExitOK
	}
	code := exitCode(err)
	var f *findingsError
	if errors.As(err, &f) {
		return code // the report already said it
	}
	fmt.Fprintf(out.stderr, "vmreconcile %s: %s\n", name, redact(oneLine(err.Error())))
	return code
}

// urlParseFix is the message for a vCenter URL that does not parse; it never
// quotes the URL, which may carry a password.
const urlParseFix = "not a valid vCenter URL (value not shown: it may hold a password) (fix: https://user:pass@host/sdk with " +
	"@ : / ? # % in the user name or password percent-encoded (%40 for @), or the password in GOVC_PASSWORD)"

// guardURLFlag wraps govc's -u flag, if the command has one, and reports
// through the returned bool that its value did not parse.
func guardURLFlag(fs *flag.FlagSet) *bool {
	failed := new(bool)
	if f := fs.Lookup("u"); f != nil {
		f.Value = &urlFlagGuard{Value: f.Value, failed: failed}
	}
	return failed
}

// urlFlagFailed reports whether fs's -u value did not parse (for commands
// that parse flags again after their arguments).
func urlFlagFailed(fs *flag.FlagSet) bool {
	if f := fs.Lookup("u"); f != nil {
		if g, ok := f.Value.(*urlFlagGuard); ok {
			return *g.failed
		}
	}
	return false
}

type urlFlagGuard struct {
	flag.Value
	failed *bool
}

// String also works on the zero value, which flag.PrintDefaults makes.
func (g *urlFlagGuard) String() string {
	if g.Value == nil {
		return ""
	}
	return g.Value.String()
}

func (g *urlFlagGuard) Set(s string) error {
	if err := g.Value.Set(s); err != nil {
		*g.failed = true
		return errors.New("invalid URL")
	}
	return nil
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
		fmt.Fprintf(w, "  %-10s %s\n", n, firstLine(commands[n]().Description()))
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
