package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vmreconcile/vmreconcile/collect"
	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/swarm"
)

// swarmFlag is the swarm side of a command: where the manager is and how long
// to watch it.
type swarmFlag struct {
	host     string
	observe  time.Duration
	lookback time.Duration
	set      map[string]bool
	fs       *flag.FlagSet
}

func (f *swarmFlag) Register(ctx context.Context, fs *flag.FlagSet) {
	fs.StringVar(&f.host, "H", "", "Docker host of a swarm manager [DOCKER_HOST]; TLS from DOCKER_TLS_VERIFY, DOCKER_CERT_PATH")
	fs.DurationVar(&f.observe, "observe", 0, "Sample the manager's node list for this long (0 = one sample); a shared node shows one identity at a time")
	fs.DurationVar(&f.lookback, "lookback", 10*time.Minute, "Replay the manager's node events of this long ago")
	f.fs = fs
}

func (f *swarmFlag) Process(ctx context.Context) error {
	f.set = map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if f.observe < 0 || f.lookback < 0 {
		return usagef("-observe and -lookback must not be negative (fix: e.g. -observe 30s -lookback 10m)")
	}
	if f.host != "" {
		if err := config.ValidateDockerHost(f.host); err != nil {
			return usagef("-H: %s", err)
		}
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" && f.host == "" {
		if err := config.ValidateDockerHost(h); err != nil {
			return usagef("DOCKER_HOST: %s", err)
		}
	}
	// The Docker client library ignores DOCKER_TLS_VERIFY when
	// DOCKER_CERT_PATH is empty and talks plain TCP; the docker CLI then
	// uses its config directory (~/.docker). Do the same, so that asking for
	// TLS never silently gives none.
	if os.Getenv("DOCKER_TLS_VERIFY") != "" && os.Getenv("DOCKER_CERT_PATH") == "" {
		dir := os.Getenv("DOCKER_CONFIG")
		if dir == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return usagef("DOCKER_TLS_VERIFY is set but DOCKER_CERT_PATH is not, and there is no home directory (fix: set DOCKER_CERT_PATH to the directory holding ca.pem, cert.pem and key.pem)")
			}
			dir = filepath.Join(home, ".docker")
		}
		os.Setenv("DOCKER_CERT_PATH", dir)
	}
	return nil
}

// observeOptions merges flags over the config file: a flag given on the
// command line wins.
func (f *swarmFlag) observeOptions(cfg config.Config) swarm.ObserveOptions {
	o := swarm.ObserveOptions{Lookback: cfg.Observe.Lookback, Window: cfg.Observe.Window, Interval: cfg.Observe.Interval}
	if f.set["observe"] {
		o.Window = f.observe
	}
	if f.set["lookback"] || cfg.Observe.Lookback == 0 {
		o.Lookback = f.lookback
	}
	if f.set["lookback"] && f.lookback == 0 {
		o.Lookback = -1 // -lookback 0: no event replay, samples only
	}
	return o
}

// connect returns the manager of -H or DOCKER_* (like the docker CLI), or
// else the first manager of each swarm of the config file.
func (f *swarmFlag) connect(ctx context.Context, cfg config.Config) ([]collect.Swarm, error) {
	if f.host != "" || os.Getenv("DOCKER_HOST") != "" || len(cfg.Swarms) == 0 {
		cli, err := swarm.NewClient(f.host)
		if err != nil {
			return nil, usagef("%s (fix: DOCKER_CERT_PATH names a directory holding ca.pem, cert.pem and key.pem, such as an unzipped client bundle; DOCKER_TLS_VERIFY set verifies the manager with ca.pem)", err)
		}
		return []collect.Swarm{{Name: cli.DaemonHost(), Client: cli}}, nil
	}
	var sws []collect.Swarm
	for _, s := range cfg.Swarms {
		sw, err := firstManager(ctx, s)
		if err != nil {
			return nil, err
		}
		sws = append(sws, sw)
	}
	return sws, nil
}

// firstManager returns a client for the first of a config swarm's hosts that
// answers a ping (failover order, as the daemon); when none answers, the
// first host, whose collection then fails with its own one-line error.
func firstManager(ctx context.Context, s config.Swarm) (collect.Swarm, error) {
	var tried []collect.Swarm
	pick := func(i int) collect.Swarm {
		for j, sw := range tried {
			if j != i {
				sw.Client.Close()
			}
		}
		return tried[i]
	}
	for _, h := range s.Hosts {
		cli, err := swarm.NewClientTLS(h, s.TLSVerify, s.CertPath)
		if err != nil {
			for _, sw := range tried {
				sw.Client.Close()
			}
			return collect.Swarm{}, usagef("swarm %s: %s", swarm.RedactHost(h), err)
		}
		tried = append(tried, collect.Swarm{Name: swarm.RedactHost(h), Client: cli})
		if len(s.Hosts) == 1 {
			break
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = cli.Ping(pctx)
		cancel()
		if err == nil {
			return pick(len(tried) - 1), nil
		}
	}
	return pick(0), nil
}

// sourceError keeps a collection error on one line, naming the source.
func sourceError(err error) error {
	var se *collect.SourceError
	if errors.As(err, &se) {
		if swarm.IsNotManager(se.Err) {
			// A worker (or a non-swarm engine) as -H, DOCKER_HOST or
			// swarms[].hosts is bad input, not a runtime failure: exit 2.
			return usagef("%s: %s (or DOCKER_HOST, or swarms[].hosts in the config)", se.Source, oneLine(se.Err.Error()))
		}
		return fmt.Errorf("%s: %s", se.Source, oneLine(se.Err.Error()))
	}
	return err
}
