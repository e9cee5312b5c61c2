package swarmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

// Engine is one running dockerd.
type Engine struct {
	Name     string // hostname the engine reports
	Host     string // "unix:///tmp/vmrswNNN/e1/sock", for client.WithHost or DOCKER_HOST
	Dir      string // the engine's directory (data, exec, pid, sock, log)
	DataRoot string
	ExecRoot string
	PIDFile  string
	LogFile  string // dockerd's stdout and stderr
	NodeID   string // swarm node ID; for a clone, the cloned worker's
	Addr     string // 127.X.Y.Z the engine listens on and advertises to the swarm

	opts     EngineOptions // as started (Restart starts it the same way)
	cmd      *exec.Cmd
	exited   chan struct{} // closed when dockerd has exited and been reaped
	cli      *client.Client
	stopOnce sync.Once
	stopErr  error
}

// Client returns an API client for the engine (version negotiated on first
// use). The engine owns it; Stop closes it.
func (e *Engine) Client() *client.Client { return e.cli }

// LogTail returns the last n lines of dockerd's log, for failure messages.
func (e *Engine) LogTail(n int) string {
	b, err := os.ReadFile(e.LogFile)
	if err != nil {
		return fmt.Sprintf("(no dockerd log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (e *Engine) logTailSuffix() string {
	return fmt.Sprintf("\n--- last lines of %s (%s) ---\n%s", e.LogFile, e.Name, e.LogTail(25))
}

// Running reports whether dockerd is still running.
func (e *Engine) Running() bool {
	select {
	case <-e.exited:
		return false
	default:
		return true
	}
}

// startEngine creates the engine's directories (copying from's data root
// when from is non-nil), starts dockerd and waits for /_ping.
func (c *Cluster) startEngine(ctx context.Context, opts EngineOptions, from *Engine) (*Engine, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errors.New("swarmtest: cluster is closed")
	}
	dir := filepath.Join(c.Dir, "e"+strconv.Itoa(len(c.engines)+1))
	c.mu.Unlock()

	addr, err := c.allocAddr()
	if err != nil {
		return nil, err
	}
	e := &Engine{
		Name:     opts.Hostname,
		Dir:      dir,
		DataRoot: filepath.Join(dir, "data"),
		ExecRoot: filepath.Join(dir, "exec"),
		PIDFile:  filepath.Join(dir, "pid"),
		LogFile:  filepath.Join(dir, "dockerd.log"),
		Host:     "unix://" + filepath.Join(dir, "sock"),
		Addr:     addr,
		opts:     opts,
		exited:   make(chan struct{}),
	}
	if len(e.Host)-len("unix://") >= 108 {
		return nil, fmt.Errorf("swarmtest: socket path %s is too long for a unix socket; use a shorter BaseDir", e.Host)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("swarmtest: %w", err)
	}
	if from != nil {
		if err := cloneDataRoot(from, e); err != nil {
			return nil, err
		}
	}
	if err := c.launch(ctx, e); err != nil {
		return nil, err
	}
	return e, nil
}

// launch starts dockerd for e (its directories exist), registers it with the
// cluster and waits for /_ping. dockerd's output is appended to e.LogFile.
func (c *Cluster) launch(ctx context.Context, e *Engine) error {
	opts := e.opts
	if opts.OneCPU {
		if _, err := exec.LookPath("taskset"); err != nil {
			return fmt.Errorf("swarmtest: OneCPU needs taskset (util-linux): %w", err)
		}
	}

	log, err := os.OpenFile(e.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("swarmtest: %w", err)
	}
	defer log.Close()
	// unshare -u gives dockerd its own UTS namespace; sh sets the hostname in
	// it and execs dockerd, so the process we start is dockerd itself (its
	// pid is the pidfile's, and its process group holds only it).
	args := []string{"-u", "sh", "-c", `hostname "$1" && shift && exec "$@"`, "sh", opts.Hostname}
	if opts.OneCPU {
		args = append(args, "taskset", "-c", "0")
	}
	args = append(args, c.opts.Dockerd,
		"--data-root", e.DataRoot,
		"--exec-root", e.ExecRoot,
		"--pidfile", e.PIDFile,
		"-H", e.Host,
		"--bridge=none", "--iptables=false", "--ip6tables=false",
	)
	cmd := exec.Command("unshare", args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sysProcAttr()
	// Register before starting so that Close finds the engine whatever happens.
	c.mu.Lock()
	c.engines = append(c.engines, e)
	c.mu.Unlock()
	if err := cmd.Start(); err != nil {
		close(e.exited)
		return fmt.Errorf("swarmtest: start dockerd for %s: %w", e.Name, err)
	}
	e.cmd = cmd
	go func() {
		_ = cmd.Wait()
		close(e.exited)
	}()
	e.cli, err = client.NewClientWithOpts(client.WithHost(e.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("swarmtest: client for %s: %w", e.Host, err)
	}
	return e.awaitPing(ctx, c.opts.ReadyTimeout)
}

// awaitPing polls /_ping until it answers, dockerd exits, or timeout passes.
func (e *Engine) awaitPing(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		_, err := e.cli.Ping(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-e.exited:
			return fmt.Errorf("swarmtest: dockerd for %s exited before answering /_ping (%v)%s",
				e.Name, e.cmd.ProcessState, e.logTailSuffix())
		case <-ctx.Done():
			return fmt.Errorf("swarmtest: dockerd for %s did not answer /_ping on %s within %s (last: %v)%s",
				e.Name, e.Host, timeout, last, e.logTailSuffix())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// awaitSwarmActive waits until the engine reports an active swarm state (and
// the given node ID when non-empty), and records its node ID.
func (e *Engine) awaitSwarmActive(ctx context.Context, timeout time.Duration, nodeID string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		info, err := e.cli.Info(ctx)
		switch {
		case err != nil:
			last = err.Error()
		case info.Swarm.LocalNodeState == swarm.LocalNodeStateActive && (nodeID == "" || info.Swarm.NodeID == nodeID):
			e.NodeID = info.Swarm.NodeID
			return nil
		default:
			last = fmt.Sprintf("state %q, node %q, error %q", info.Swarm.LocalNodeState, info.Swarm.NodeID, info.Swarm.Error)
		}
		select {
		case <-e.exited:
			return fmt.Errorf("swarmtest: dockerd for %s exited while waiting for swarm (%v)%s", e.Name, e.cmd.ProcessState, e.logTailSuffix())
		case <-ctx.Done():
			return fmt.Errorf("swarmtest: %s not active in the swarm within %s (last: %s)%s", e.Name, timeout, last, e.logTailSuffix())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop kills dockerd and its containerd, like pulling a VM's power: no
// graceful swarm shutdown, which would take dockerd 3-9 s per engine. It then
// unmounts whatever dockerd left under its directory (the data root is
// bind-mounted onto itself, netns files under exec-root). The directory stays
// until Cluster.Close, so a stopped engine's data root can still be read.
// Stop is idempotent.
func (e *Engine) Stop() error {
	e.stopOnce.Do(func() { e.stopErr = e.stop() })
	return e.stopErr
}

func (e *Engine) stop() error {
	var errs []error
	if e.cli != nil {
		_ = e.cli.Close()
	}
	if e.cmd != nil && e.cmd.Process != nil {
		// containerd first, while dockerd still runs to reap it: killed
		// after dockerd (its Pdeathsig) it is orphaned to pid 1 and lingers
		// as a zombie until init gets round to it. Then dockerd's group,
		// then a sweep of anything else running from this engine's directory.
		killChildrenFirst(e.Dir, e.cmd.Process.Pid)
		killGroup(e.cmd.Process.Pid)
		select {
		case <-e.exited:
		case <-time.After(10 * time.Second):
			errs = append(errs, fmt.Errorf("swarmtest: dockerd %d for %s did not exit after SIGKILL", e.cmd.Process.Pid, e.Name))
		}
	}
	errs = append(errs, killUnder(e.Dir), unmountUnder(e.Dir))
	return errors.Join(errs...)
}

// cloneDataRoot copies from's data root to e's, as cloning the VM would, and
// points the clone's swarm listen/advertise address at e.Addr (see StartClone).
func cloneDataRoot(from, e *Engine) error {
	// cp -a keeps ownership, modes and special files; copying while the
	// source runs is what a VM clone of a live VM does too.
	if out, err := exec.Command("cp", "-a", "--", from.DataRoot, e.DataRoot).CombinedOutput(); err != nil {
		return fmt.Errorf("swarmtest: copy data root of %s: %v: %s", from.Name, err, bytes.TrimSpace(out))
	}
	if err := os.RemoveAll(filepath.Join(e.DataRoot, "containers")); err != nil {
		return fmt.Errorf("swarmtest: %w", err)
	}
	statePath := filepath.Join(e.DataRoot, "swarm", "docker-state.json")
	b, err := os.ReadFile(statePath)
	if err != nil {
		return fmt.Errorf("swarmtest: %s has no swarm state to clone: %w", from.Name, err)
	}
	var state map[string]any
	if err := json.Unmarshal(b, &state); err != nil {
		return fmt.Errorf("swarmtest: parse %s: %w", statePath, err)
	}
	for _, key := range []string{"ListenAddr", "AdvertiseAddr"} {
		if v, ok := state[key].(string); ok && v != "" {
			_, port, err := net.SplitHostPort(v)
			if err != nil {
				state[key] = e.Addr
			} else {
				state[key] = net.JoinHostPort(e.Addr, port)
			}
		}
	}
	if b, err = json.Marshal(state); err != nil {
		return fmt.Errorf("swarmtest: %w", err)
	}
	if err := os.WriteFile(statePath, b, 0o600); err != nil {
		return fmt.Errorf("swarmtest: %w", err)
	}
	return nil
}
