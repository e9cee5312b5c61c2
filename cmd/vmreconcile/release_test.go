package main

import (
	"context"
	"debug/elf"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/swarmtest"
)

// release runs scripts/release for linux/GOARCH into a new directory and
// returns it.
func release(t *testing.T, version string) string {
	t.Helper()
	dist := t.TempDir()
	cmd := exec.Command("../../scripts/release", "linux/"+runtime.GOARCH)
	cmd.Env = append(os.Environ(), "DIST="+dist, "VERSION="+version)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/release: %v\n%s", err, out)
	}
	return dist
}

// TestRelease: make release's script builds a static binary, stamped with
// VERSION, and a SHA256SUMS that sha256sum -c verifies (and that catches a
// changed binary).
func TestRelease(t *testing.T) {
	dist := release(t, "v0.0.0-releasetest")
	bin := filepath.Join(dist, "vmreconcile-linux-"+runtime.GOARCH)
	check := func() (string, error) {
		cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
		cmd.Dir = dist
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := check(); err != nil || strings.TrimSpace(out) != "vmreconcile-linux-"+runtime.GOARCH+": OK" {
		t.Errorf("sha256sum -c: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	libs, _ := f.ImportedLibraries()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a dynamic loader (PT_INTERP): not static")
		}
	}
	f.Close()
	if len(libs) > 0 {
		t.Errorf("the binary needs shared libraries: %v", libs)
	}
	if out, err := exec.Command(bin, "--version").Output(); err != nil || !strings.HasPrefix(string(out), "vmreconcile v0.0.0-releasetest\n") {
		t.Errorf("--version: %v %q", err, out)
	}
	if err := os.WriteFile(bin, []byte("tampered"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := check(); err == nil {
		t.Errorf("sha256sum -c accepted a changed binary:\n%s", out)
	}
}

// TestDockerImage builds the Dockerfile on a real dockerd (nothing to pull:
// FROM scratch), then runs the image as docs/install.md says: --version,
// config validate (the store's directory is writable by the image's user),
// and the daemon, which serves /metrics and stops cleanly on docker stop.
func TestDockerImage(t *testing.T) {
	swarmtest.Require(t)
	dist := release(t, "v0.0.0-imagetest")
	ctxDir := t.TempDir()
	for _, f := range []string{"Dockerfile", ".dockerignore"} {
		b, err := os.ReadFile(filepath.Join("../..", f))
		if err != nil {
			t.Fatal(err)
		}
		writeCfg(t, ctxDir, f, string(b))
	}
	if err := os.MkdirAll(filepath.Join(ctxDir, "dist", "image", "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{
		filepath.Join(dist, "vmreconcile-linux-"+runtime.GOARCH): "vmreconcile-linux-" + runtime.GOARCH,
		"/etc/ssl/certs/ca-certificates.crt":                     "image/ca-certificates.crt",
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Skipf("%v", err)
		}
		if err := os.WriteFile(filepath.Join(ctxDir, "dist", dst), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(t, ctxDir, "junk-not-in-the-image", "x") // .dockerignore keeps it out

	c := swarmtest.NewCluster(t, swarmtest.Options{})
	docker := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", c.Manager.Host}, args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "DOCKER_BUILDKIT=0"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := docker("build", "--build-arg", "TARGETARCH="+runtime.GOARCH, "-t", "vmreconcile:test", ctxDir); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	if out, err := docker("run", "--rm", "--network", "none", "vmreconcile:test", "--version"); err != nil || !strings.HasPrefix(out, "vmreconcile v0.0.0-imagetest\n") {
		t.Errorf("docker run --version: %v\n%s", err, out)
	}
	if out, err := docker("image", "inspect", "-f", "{{.Config.User}} {{.Config.Cmd}}", "vmreconcile:test"); err != nil || strings.TrimSpace(out) != "65532:65532 [daemon -config /etc/vmreconcile/config.yaml]" {
		t.Errorf("image user and command: %v %q", err, out)
	}

	sim := newSim(t, "clusterimage")
	addr := freeAddr(t)
	cfgDir := t.TempDir()
	writeCfg(t, cfgDir, "config.yaml", fmt.Sprintf("swarms:\n  - hosts: [%q]\n", sim.Host()))
	os.Chmod(cfgDir, 0o755)
	os.Chmod(filepath.Join(cfgDir, "config.yaml"), 0o644)
	mount := cfgDir + ":/etc/vmreconcile:ro"
	out, err := docker("run", "--rm", "--network", "none", "-v", mount, "vmreconcile:test", "config", "validate", "-config", "/etc/vmreconcile/config.yaml")
	if err != nil || !strings.Contains(out, "/etc/vmreconcile/config.yaml: valid") || !strings.Contains(out, "store       /var/lib/vmreconcile/state.db") ||
		!strings.Contains(out, "listen      0.0.0.0:9477") {
		t.Errorf("config validate in the image: %v\n%s", err, out)
	}

	// The documented run line, on the host's network so that it reaches the
	// simulated manager on loopback (a real one is reached by its address).
	if out, err := docker("run", "-d", "--name", "vmr-test", "--network", "host", "-e", "VMRECONCILE_LISTEN="+addr,
		"-v", mount, "-v", "vmr-test-state:/var/lib/vmreconcile", "vmreconcile:test"); err != nil {
		t.Fatalf("docker run -d: %v\n%s", err, out)
	}
	defer docker("rm", "-f", "vmr-test")
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
			err = fmt.Errorf("%d %s", resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			logs, _ := docker("logs", "vmr-test")
			t.Fatalf("/readyz of the containerized daemon: %v\n%s", err, logs)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if out, err := docker("stop", "vmr-test"); err != nil {
		t.Fatalf("docker stop: %v\n%s", err, out)
	}
	if out, err := docker("inspect", "-f", "{{.State.ExitCode}}", "vmr-test"); err != nil || strings.TrimSpace(out) != "0" {
		logs, _ := docker("logs", "vmr-test")
		t.Errorf("exit code after docker stop: %v %q\n%s", err, out, logs)
	}
}
