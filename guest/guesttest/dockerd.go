// Package guesttest runs real vSphere guest operations in tests: it starts a
// private dockerd, builds a tiny guest image and creates vcsim VMs backed by
// containers of that image, so guest.Probe and guest.Run go through vcsim's
// GuestOperationsManager, `docker exec` and GNU tar exactly as in production
// code paths (no SOAP fakes).
//
// Typical use from another package's tests:
//
//	func TestMain(m *testing.M) { os.Exit(guesttest.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		ctx, c, model := guesttest.Simulator(t) // vcsim VPX model + client
//		vm := guesttest.NewVM(t, ctx, c, guesttest.VMSpec{
//			Name:  "worker-1",
//			Dirs:  map[string]string{"/var/lib/docker": hostDir}, // bind mount
//			Files: map[string]string{"/etc/machine-id": "0123...\n"},
//			Units: guesttest.DockerRunning, // systemctl stand-in state
//		})
//		guesttest.RequireGuestPassword(model, "secret") // optional
//		// ... guest.Run / guest.Probe against vm with any user and "secret" ...
//		calls := guesttest.SystemctlCalls(t, vm) // e.g. ["disable --now docker.service"]
//	}
//
// Everything needs root, the docker CLI and dockerd (Debian: docker.io),
// busybox (busybox-static), GNU tar and coreutils' mktemp on the host. When
// docker cannot run the helpers call t.Skip, or t.Fatal when the environment
// variable CI is "true".
package guesttest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Daemon is a dockerd started for vcsim, private to this test process.
type Daemon struct {
	// Host is the DOCKER_HOST value ("unix:///tmp/.../docker.sock").
	Host string

	dir     string
	cmd     *exec.Cmd
	logFile *os.File
	waitErr chan error
}

var (
	mu         sync.Mutex
	daemon     *Daemon
	daemonErr  error
	mainActive bool // Main owns the daemon's lifetime
	prevHost   *string
)

// ErrUnavailable wraps every reason the docker-backed helpers cannot run.
var ErrUnavailable = errors.New("guesttest: docker-backed guest VMs unavailable")

// Main runs the tests of a package and stops the private dockerd afterwards
// (if any test started one). Use it as:
//
//	func TestMain(m *testing.M) { os.Exit(guesttest.Main(m)) }
//
// The daemon is started lazily by the first test that needs it, so packages
// whose docker tests are all skipped or filtered out pay nothing.
func Main(m *testing.M) int {
	mu.Lock()
	mainActive = true
	mu.Unlock()
	code := m.Run()
	if err := Shutdown(); err != nil {
		fmt.Fprintf(os.Stderr, "guesttest: stopping dockerd: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Setup starts the private dockerd and builds the guest image, for callers
// that manage the lifetime themselves (a TestMain that does not use Main).
// Pair it with Shutdown. The error wraps ErrUnavailable when docker cannot run.
func Setup() error {
	mu.Lock()
	mainActive = true
	mu.Unlock()
	if _, err := ensureDaemon(); err != nil {
		return err
	}
	_, err := ensureImage()
	return err
}

// StartDockerd returns the process-wide private dockerd, starting it on first
// use and pointing DOCKER_HOST (and VCSIM_BUSYBOX) at it. Under Main or Setup
// the daemon lives until Shutdown; otherwise it is stopped when t ends.
// Skips the test (fails it when CI=true) when docker cannot run, and with
// -short, which runs only the tests that need no root (make race).
func StartDockerd(t testing.TB) *Daemon {
	t.Helper()
	if testing.Short() {
		t.Skip("guesttest: container-backed guests (a private dockerd) are skipped with -short")
	}
	d, err := ensureDaemon()
	if err != nil {
		unavailable(t, err)
	}
	mu.Lock()
	owned := mainActive
	mu.Unlock()
	if !owned {
		t.Cleanup(func() {
			if err := Shutdown(); err != nil {
				t.Errorf("stopping dockerd: %v", err)
			}
		})
	}
	return d
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%v (CI=true, so this is a failure, not a skip)", err)
	}
	t.Skipf("skipping: %v (set CI=true to make this a failure)", err)
}

func ensureDaemon() (*Daemon, error) {
	mu.Lock()
	defer mu.Unlock()
	if daemon != nil {
		return daemon, nil
	}
	if daemonErr != nil {
		return nil, daemonErr
	}
	d, err := startDaemon()
	if err != nil {
		daemonErr = fmt.Errorf("%w: %v", ErrUnavailable, err)
		return nil, daemonErr
	}
	daemon = d
	if old, ok := os.LookupEnv("DOCKER_HOST"); ok {
		prevHost = &old
	}
	os.Setenv("DOCKER_HOST", d.Host)
	return d, nil
}

func startDaemon() (*Daemon, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("needs linux, have %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root to run dockerd")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		return nil, errors.New("docker CLI not on PATH")
	}
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		return nil, errors.New("dockerd not on PATH (apt-get install docker.io)")
	}
	// Short path: the unix socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "vmrgt-")
	if err != nil {
		return nil, err
	}
	d := &Daemon{dir: dir, Host: "unix://" + filepath.Join(dir, "docker.sock"), waitErr: make(chan error, 1)}
	logFile, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	d.logFile = logFile
	// No container networking: vcsim only needs `docker inspect` (an empty IP
	// is fine, guest operations go through `docker exec`), and a bridge would
	// collide with other dockerds on the host (docker0, iptables chains).
	d.cmd = exec.Command(dockerd,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"-H", d.Host,
		"--bridge=none", "--iptables=false", "--ip6tables=false",
		"--userland-proxy=false",
		"--log-level=warn",
	)
	d.cmd.Stdout = logFile
	d.cmd.Stderr = logFile
	// Own process group, so a Ctrl-C of `go test` does not kill it before
	// Shutdown runs, and containerd (its child) is in the group too.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		logFile.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	go func() { d.waitErr <- d.cmd.Wait() }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := d.docker(nil, "version", "--format", "{{.Server.Version}}")
		if err == nil && len(bytes.TrimSpace(out)) > 0 {
			break
		}
		select {
		case werr := <-d.waitErr:
			d.waitErr <- werr
			logs := d.tail()
			d.cleanupDir()
			return nil, fmt.Errorf("dockerd exited: %v: %s", werr, logs)
		default:
		}
		if time.Now().After(deadline) {
			logs := d.tail()
			d.stop()
			return nil, fmt.Errorf("dockerd not ready after 30s: %s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return d, nil
}

// docker runs the docker CLI against this daemon.
func (d *Daemon) docker(stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.Host)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Docker runs the docker CLI against the private daemon and returns stdout.
func (d *Daemon) Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := d.docker(nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func (d *Daemon) tail() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// Shutdown removes every container of the private dockerd, stops it (and its
// containerd) and deletes its directories. Safe to call when none was started.
func Shutdown() error {
	mu.Lock()
	defer mu.Unlock()
	d := daemon
	daemon = nil
	daemonErr = nil
	imageRef, imageErr = "", nil
	imageOnce = sync.Once{}
	if d == nil {
		return nil
	}
	if prevHost != nil {
		os.Setenv("DOCKER_HOST", *prevHost)
	} else {
		os.Unsetenv("DOCKER_HOST")
	}
	prevHost = nil
	if ids, err := d.docker(nil, "ps", "-aq"); err == nil {
		if f := strings.Fields(string(ids)); len(f) > 0 {
			_, _ = d.docker(nil, append([]string{"rm", "-f", "-v"}, f...)...)
		}
	}
	return d.stop()
}

func (d *Daemon) stop() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case werr := <-d.waitErr:
		if werr != nil && !isSignalExit(werr) {
			err = fmt.Errorf("dockerd: %v", werr)
		}
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.waitErr
		err = errors.New("dockerd did not stop within 20s; killed")
	}
	// containerd is dockerd's child in the same process group; make sure
	// nothing of the group outlives us.
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	d.cleanupDir()
	return err
}

func isSignalExit(err error) bool {
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		if ws, ok := xe.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return true
		}
	}
	return false
}

func (d *Daemon) cleanupDir() {
	if d.logFile != nil {
		d.logFile.Close()
	}
	// dockerd unmounts its overlays on a clean stop; unmount leftovers
	// (lazy) before removing, never following into a live mount.
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		var mps []string
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && strings.HasPrefix(f[4], d.dir+"/") {
				mps = append(mps, f[4])
			}
		}
		for i := len(mps) - 1; i >= 0; i-- {
			_ = syscall.Unmount(mps[i], syscall.MNT_DETACH)
		}
	}
	_ = os.RemoveAll(d.dir)
}
