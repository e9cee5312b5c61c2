// Package swarmtest starts real dockerd engines, joined into a Docker Swarm,
// for tests that need a live swarm manager rather than a fake API.
//
// Why real engines: the failure vmreconcile hunts (a cloned VM that reconnects
// to the manager with the original's swarm node ID) is a behaviour of the
// swarm manager itself. The only faithful way to test it is to run a manager,
// a worker, and a "clone" booted from a copy of the worker's data root, and
// watch the manager flip the node's description between the two.
//
// Every engine runs in its own UTS namespace (so it can have its own hostname)
// with its own data root, exec root and unix socket under one short temporary
// directory, and listens on its own 127.X.Y.Z address from a block picked at
// random per cluster, so that several test processes can run clusters on the
// same machine at once without fighting over ports 2377 and 7946.
//
// The core API (Start, Cluster.StartClone, Cluster.Close, Run) returns errors
// and works from any program; the testing.TB wrappers (Require, NewCluster,
// Cluster.Clone) skip or fail the test and register cleanup with t.Cleanup, so
// no TestMain is needed in the calling package.
package swarmtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// EngineOptions describes one engine to start.
type EngineOptions struct {
	// Hostname is the hostname the engine reports to the swarm (and the
	// Engine's Name). Required.
	Hostname string
	// OneCPU pins dockerd to CPU 0 with taskset. moby counts CPUs by its
	// scheduling affinity, so the engine then reports NanoCPUs = 1e9: a cheap
	// way to give two engines on one machine different resources.
	OneCPU bool
}

// Options configures a cluster.
type Options struct {
	// Manager is the single manager; its Hostname defaults to "mgr".
	Manager EngineOptions
	// Workers are joined to the manager in order.
	Workers []EngineOptions
	// BaseDir is the parent of the cluster's temporary directory; default
	// "/tmp". Keep it short: unix socket paths must stay under 108 bytes.
	BaseDir string
	// Dockerd is the dockerd binary; default: $VMRECONCILE_DOCKERD (another
	// engine version, see scripts/dockerd-29), else "dockerd" from PATH.
	Dockerd string
	// ReadyTimeout bounds how long one engine may take to answer /_ping and
	// a joined node to become ready in the manager's view; default 45s.
	ReadyTimeout time.Duration
}

// Cluster is a running swarm: one manager, its workers, and any clones.
type Cluster struct {
	Manager *Engine
	Workers []*Engine
	// Dir is the cluster's temporary directory; Close removes it.
	Dir string

	opts  Options
	block [2]byte // engines get 127.block[0].block[1].n, n = 1, 2, ...

	mu      sync.Mutex
	engines []*Engine // every engine started, clones included
	nextIP  int
	closed  bool
}

const (
	swarmPort    = 2377
	gossipPort   = 7946
	maxEngines   = 254 // per address block
	defaultReady = 45 * time.Second
)

// Check reports why real engines cannot be started here (not root, dockerd or
// unshare missing), or nil when they can.
func Check() error {
	if !supported {
		return errors.New("swarmtest: real dockerd engines need Linux")
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("swarmtest: real dockerd engines need root (running as uid %d)", os.Geteuid())
	}
	for _, bin := range []string{dockerdBinary(), "containerd", "unshare"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("swarmtest: %s not found in PATH (install docker.io / util-linux): %w", bin, err)
		}
	}
	return nil
}

// Start starts a manager, initialises a swarm on it and joins the workers.
// On error everything already started is stopped and removed again. The
// caller owns the returned Cluster and must Close it.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if opts.Manager.Hostname == "" {
		opts.Manager.Hostname = "mgr"
	}
	if opts.BaseDir == "" {
		opts.BaseDir = "/tmp"
	}
	if opts.Dockerd == "" {
		opts.Dockerd = dockerdBinary()
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = defaultReady
	}
	for _, w := range opts.Workers {
		if w.Hostname == "" {
			return nil, errors.New("swarmtest: every worker needs a Hostname")
		}
	}
	dir, err := os.MkdirTemp(opts.BaseDir, "vmrsw")
	if err != nil {
		return nil, fmt.Errorf("swarmtest: create cluster directory: %w", err)
	}
	c := &Cluster{Dir: dir, opts: opts}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()
	if err := c.pickBlock(); err != nil {
		return nil, err
	}

	mgr, err := c.startEngine(ctx, opts.Manager, nil)
	if err != nil {
		return nil, fmt.Errorf("swarmtest: start manager: %w", err)
	}
	c.Manager = mgr
	nodeID, err := mgr.Client().SwarmInit(ctx, swarm.InitRequest{
		ListenAddr:    net.JoinHostPort(mgr.Addr, strconv.Itoa(swarmPort)),
		AdvertiseAddr: mgr.Addr,
	})
	if err != nil {
		return nil, fmt.Errorf("swarmtest: swarm init on %s: %w%s", mgr.Name, err, mgr.logTailSuffix())
	}
	mgr.NodeID = nodeID
	sw, err := mgr.Client().SwarmInspect(ctx)
	if err != nil {
		return nil, fmt.Errorf("swarmtest: swarm inspect on %s: %w", mgr.Name, err)
	}
	token := sw.JoinTokens.Worker

	for _, wo := range opts.Workers {
		w, err := c.startEngine(ctx, wo, nil)
		if err != nil {
			return nil, fmt.Errorf("swarmtest: start worker %s: %w", wo.Hostname, err)
		}
		c.Workers = append(c.Workers, w)
		if err := w.Client().SwarmJoin(ctx, swarm.JoinRequest{
			ListenAddr:    net.JoinHostPort(w.Addr, strconv.Itoa(swarmPort)),
			AdvertiseAddr: w.Addr,
			RemoteAddrs:   []string{net.JoinHostPort(mgr.Addr, strconv.Itoa(swarmPort))},
			JoinToken:     token,
		}); err != nil {
			return nil, fmt.Errorf("swarmtest: swarm join of %s: %w%s", w.Name, err, w.logTailSuffix())
		}
		if err := c.awaitNode(ctx, w, ""); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Run starts a cluster, calls fn and always closes the cluster afterwards,
// for programs (benchmarks, demos) that are not tests.
func Run(ctx context.Context, opts Options, fn func(*Cluster) error) error {
	c, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	return errors.Join(fn(c), c.Close())
}

// Engines returns every engine started in the cluster, clones included, in
// start order.
func (c *Cluster) Engines() []*Engine {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Engine(nil), c.engines...)
}

// Engine returns the engine with the given hostname, or nil. Clones are found
// too; if names repeat, the first started wins.
func (c *Cluster) Engine(hostname string) *Engine {
	for _, e := range c.Engines() {
		if e.Name == hostname {
			return e
		}
	}
	return nil
}

// StartClone does what cloning a live worker VM does: it copies the worker's
// data root while the worker runs and boots a new engine on the copy with
// another hostname. The clone comes up with the worker's swarm identity
// (certificates and node ID) and connects to the manager as the same node.
//
// Two things differ from a byte-for-byte clone, both because every engine here
// shares the host's loopback: containers/ is dropped (a clone's containers are
// dead anyway), and the clone's swarm listen/advertise address is rewritten to
// its own 127.X.Y.Z, or it could not bind the gossip port the worker holds. A
// real clone has its own IP too, so the manager sees the same thing.
//
// StartClone returns once the clone answers and reports the worker's node ID
// in an active swarm state.
func (c *Cluster) StartClone(ctx context.Context, worker *Engine, opts EngineOptions) (*Engine, error) {
	if worker == nil || worker.NodeID == "" {
		return nil, errors.New("swarmtest: clone source must be a joined engine of this cluster")
	}
	if opts.Hostname == "" {
		return nil, errors.New("swarmtest: clone needs a Hostname")
	}
	e, err := c.startEngine(ctx, opts, worker)
	if err != nil {
		return nil, fmt.Errorf("swarmtest: start clone %s of %s: %w", opts.Hostname, worker.Name, err)
	}
	e.NodeID = worker.NodeID
	if err := e.awaitSwarmActive(ctx, c.opts.ReadyTimeout, worker.NodeID); err != nil {
		return e, err
	}
	return e, nil
}

// Close stops every engine (in parallel), unmounts what they left and removes
// the cluster directory. It is safe to call more than once.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	engines := append([]*Engine(nil), c.engines...)
	c.mu.Unlock()

	errs := make([]error, len(engines))
	var wg sync.WaitGroup
	for i, e := range engines {
		wg.Go(func() { errs[i] = e.Stop() })
	}
	wg.Wait()
	// Sweep again at cluster level: a process that was started between the
	// engine stops (there should be none) or a mount outside an engine dir.
	errs = append(errs, killUnder(c.Dir), unmountUnder(c.Dir))
	if err := os.RemoveAll(c.Dir); err != nil {
		errs = append(errs, fmt.Errorf("swarmtest: remove %s: %w", c.Dir, err))
	}
	return errors.Join(errs...)
}

// pickBlock chooses a random 127.X.Y.0/24 block whose first address has the
// swarm and gossip ports free. Random blocks make collisions between
// concurrent test processes unlikely; the probe catches the rest.
func (c *Cluster) pickBlock() error {
	for range 50 {
		b := [2]byte{byte(16 + rand.IntN(238)), byte(rand.IntN(256))}
		if portsFree(fmt.Sprintf("127.%d.%d.1", b[0], b[1])) {
			c.block = b
			return nil
		}
	}
	return errors.New("swarmtest: no free 127.X.Y.0/24 address block found after 50 tries")
}

// allocAddr returns the next free loopback address of the block.
func (c *Cluster) allocAddr() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.nextIP < maxEngines {
		c.nextIP++
		ip := fmt.Sprintf("127.%d.%d.%d", c.block[0], c.block[1], c.nextIP)
		if portsFree(ip) {
			return ip, nil
		}
	}
	return "", fmt.Errorf("swarmtest: address block 127.%d.%d.0/24 exhausted", c.block[0], c.block[1])
}

// portsFree reports whether tcp/2377, tcp/7946 and udp/7946 can be bound on ip.
func portsFree(ip string) bool {
	var closers []func() error
	defer func() {
		for _, f := range closers {
			_ = f()
		}
	}()
	for _, p := range []int{swarmPort, gossipPort} {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
		if err != nil {
			return false
		}
		closers = append(closers, l.Close)
	}
	pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(gossipPort)))
	if err != nil {
		return false
	}
	closers = append(closers, pc.Close)
	return true
}

// awaitNode waits until the manager lists node e.NodeID as ready, with the
// given hostname when non-empty.
func (c *Cluster) awaitNode(ctx context.Context, e *Engine, hostname string) error {
	if err := e.awaitSwarmActive(ctx, c.opts.ReadyTimeout, ""); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.ReadyTimeout)
	defer cancel()
	var last string
	for {
		n, _, err := c.Manager.Client().NodeInspectWithRaw(ctx, e.NodeID)
		switch {
		case err != nil:
			last = err.Error()
		case n.Status.State == swarm.NodeStateReady && (hostname == "" || n.Description.Hostname == hostname):
			return nil
		default:
			last = fmt.Sprintf("state %s, hostname %q", n.Status.State, n.Description.Hostname)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("swarmtest: node %s (%s) not ready on the manager within %s (last: %s)%s",
				e.NodeID, e.Name, c.opts.ReadyTimeout, last, e.logTailSuffix())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// dockerdBinary is the engine the tests run: $VMRECONCILE_DOCKERD when set
// (a current Engine next to Debian's 20.10), else dockerd from PATH.
func dockerdBinary() string {
	if d := os.Getenv("VMRECONCILE_DOCKERD"); d != "" {
		return d
	}
	return "dockerd"
}
