package guesttest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	_ "github.com/vmware/govmomi/vapi/simulator" // vcsim's vAPI endpoints (tags)
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
)

// Unit is the systemctl stand-in's state of one unit.
type Unit struct {
	Enabled string // is-enabled answer: "enabled", "disabled", "masked"...; "" = unit not found
	Active  string // is-active answer: "active", "inactive", "failed"...; "" = "inactive"
}

// DockerRunning is the unit state of a node whose docker starts at boot and runs.
var DockerRunning = map[string]Unit{
	"docker.service": {Enabled: "enabled", Active: "active"},
	"docker.socket":  {Enabled: "enabled", Active: "active"},
}

// File is a file to place in the guest.
type File struct {
	Content string
	Mode    int64 // 0 means 0644
}

// VMSpec describes a container-backed vcsim VM.
type VMSpec struct {
	// Name of the VM; must be unique in the simulator.
	Name string
	// Files are written into the guest (guest path → content) after the
	// container starts, through any Dirs mount that covers them.
	Files map[string]string
	// Modes overrides the mode of some Files (default 0644).
	Modes map[string]int64
	// Dirs bind-mounts host directories into the guest (guest dir → host
	// dir), e.g. {"/var/lib/docker": t.TempDir()}, so tests can prepare and
	// inspect the guest's files from the host.
	Dirs map[string]string
	// Units sets the systemctl stand-in's answers (unit name → state).
	Units map[string]Unit
	// PoweredOff leaves the VM powered off after its files are in place.
	PoweredOff bool
	// DockerArgs are extra `docker create` arguments (e.g. "--pid=host").
	// They are parsed by a shell on vcsim's side: quote accordingly.
	DockerArgs []string
}

var (
	vmMu     sync.Mutex
	vmLabels = map[string]string{} // VM moref value → container label value
)

const labelKey = "vmreconcile.guesttest"

// Simulator starts an in-process vCenter simulator (the VPX model) and
// returns a client logged in to it. Both are closed when t ends. The model
// is returned for RequireGuestPassword and other registry tweaks.
func Simulator(t testing.TB) (context.Context, *vim25.Client, *simulator.Model) {
	t.Helper()
	model := simulator.VPX()
	if err := model.Create(); err != nil {
		t.Fatalf("vcsim: %v", err)
	}
	model.Service.RegisterEndpoints = true // vAPI (tags), as a vCenter has
	server := model.Service.NewServer()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := govmomi.NewClient(ctx, server.URL, true)
	if err != nil {
		server.Close()
		model.Remove()
		cancel()
		t.Fatalf("vcsim client: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		server.Close()
		model.Remove()
	})
	return ctx, c.Client, model
}

// NewVM creates a container-backed VM (running the guest image) in the first
// datacenter of the simulator c talks to, powers it on, places the files and
// unit states, and powers it off again when spec.PoweredOff is set. When t
// ends the VM is powered off and destroyed through vSphere, which removes its
// container. Guest operations need a non-empty user name and password.
//
// Each VM takes about 3s: vcsim polls `docker inspect` for an IP 5 times,
// 500ms apart, and the guest containers have no network. Use NewVMs to
// create several at once.
func NewVM(t testing.TB, ctx context.Context, c *vim25.Client, spec VMSpec) *object.VirtualMachine {
	t.Helper()
	return NewVMs(t, ctx, c, spec)[0]
}

// NewVMs is NewVM for several VMs, created concurrently; the result follows
// the order of specs.
func NewVMs(t testing.TB, ctx context.Context, c *vim25.Client, specs ...VMSpec) []*object.VirtualMachine {
	t.Helper()
	d := StartDockerd(t)
	image := Image(t)
	names := map[string]bool{}
	for _, s := range specs {
		if s.Name == "" || names[s.Name] {
			t.Fatalf("guesttest.NewVM: VMSpec.Name %q is empty or repeated", s.Name)
		}
		names[s.Name] = true
	}
	loc, err := locate(ctx, c)
	if err != nil {
		t.Fatalf("guesttest.NewVM: %v", err)
	}
	vms := make([]*object.VirtualMachine, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vms[i], errs[i] = newVM(ctx, c, d, image, loc, spec)
		}()
	}
	wg.Wait()
	for i, vm := range vms {
		if vm == nil {
			continue
		}
		name := specs[i].Name
		t.Cleanup(func() { destroy(t, d, vm, name) })
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("guesttest.NewVM %s: %v", specs[i].Name, err)
		}
	}
	return vms
}

type location struct {
	folder *object.Folder
	pool   *object.ResourcePool
	ds     string
}

func locate(ctx context.Context, c *vim25.Client) (*location, error) {
	finder := find.NewFinder(c)
	dc, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		dcs, lerr := finder.DatacenterList(ctx, "*")
		if lerr != nil || len(dcs) == 0 {
			return nil, fmt.Errorf("no datacenter: %v", err)
		}
		dc = dcs[0]
	}
	finder.SetDatacenter(dc)
	pools, err := finder.ResourcePoolList(ctx, "*")
	if err != nil || len(pools) == 0 {
		return nil, fmt.Errorf("no resource pool: %v", err)
	}
	dss, err := finder.DatastoreList(ctx, "*")
	if err != nil || len(dss) == 0 {
		return nil, fmt.Errorf("no datastore: %v", err)
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		return nil, err
	}
	return &location{folder: folders.VmFolder, pool: pools[0], ds: dss[0].Name()}, nil
}

func newVM(ctx context.Context, c *vim25.Client, d *Daemon, image string, loc *location, spec VMSpec) (*object.VirtualMachine, error) {
	token := spec.Name + "-" + randHex(4)
	run := []string{"--network=none", "--label", shellQuote(labelKey + "=" + token)}
	guestDirs := make([]string, 0, len(spec.Dirs))
	for g := range spec.Dirs {
		guestDirs = append(guestDirs, g)
	}
	sort.Strings(guestDirs)
	for _, g := range guestDirs {
		h := spec.Dirs[g]
		if err := os.MkdirAll(h, 0o755); err != nil {
			return nil, err
		}
		run = append(run, "-v", shellQuote(h+":"+g))
	}
	run = append(run, spec.DockerArgs...)
	run = append(run, image)

	cfg := types.VirtualMachineConfigSpec{
		Name:    spec.Name,
		GuestId: string(types.VirtualMachineGuestOsIdentifierOtherLinux64Guest),
		Files:   &types.VirtualMachineFileInfo{VmPathName: fmt.Sprintf("[%s] %s", loc.ds, spec.Name)},
		ExtraConfig: []types.BaseOptionValue{
			&types.OptionValue{Key: "RUN.container", Value: strings.Join(run, " ")},
			&types.OptionValue{Key: "RUN.mountdmi", Value: "false"},
		},
	}
	task, err := loc.folder.CreateVM(ctx, cfg, loc.pool, nil)
	if err != nil {
		return nil, fmt.Errorf("CreateVM: %w", err)
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("CreateVM: %w", err)
	}
	vm := object.NewVirtualMachine(c, info.Result.(types.ManagedObjectReference))
	vmMu.Lock()
	vmLabels[vm.Reference().Value] = token
	vmMu.Unlock()

	powerTask, err := vm.PowerOn(ctx)
	if err == nil {
		err = powerTask.Wait(ctx)
	}
	if err != nil {
		return vm, fmt.Errorf("PowerOn: %w (dockerd log: %s)", err, d.tail())
	}

	files := map[string]File{}
	for p, content := range spec.Files {
		mode := int64(0o644)
		if m, ok := spec.Modes[p]; ok {
			mode = m
		}
		files[p] = File{Content: content, Mode: mode}
	}
	for u, st := range spec.Units {
		if st.Enabled != "" {
			files[SystemctlStateDir+"/"+u+".enabled"] = File{Content: st.Enabled + "\n", Mode: 0o644}
		}
		if st.Active != "" {
			files[SystemctlStateDir+"/"+u+".active"] = File{Content: st.Active + "\n", Mode: 0o644}
		}
	}
	if len(files) > 0 {
		id, err := containerID(d, vm)
		if err != nil {
			return vm, err
		}
		if err := writeFiles(d, id, files); err != nil {
			return vm, err
		}
	}

	if spec.PoweredOff {
		task, err := vm.PowerOff(ctx)
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			return vm, fmt.Errorf("PowerOff: %w", err)
		}
	}
	return vm, nil
}

func destroy(t testing.TB, d *Daemon, vm *object.VirtualMachine, name string) {
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if task, err := vm.PowerOff(cctx); err == nil {
		_ = task.Wait(cctx)
	}
	if task, err := vm.Destroy(cctx); err == nil {
		if err := task.Wait(cctx); err != nil {
			t.Logf("guesttest: destroying %s: %v", name, err)
		}
	}
	// Belt and braces: vcsim removes the container on Destroy.
	vmMu.Lock()
	token := vmLabels[vm.Reference().Value]
	delete(vmLabels, vm.Reference().Value)
	vmMu.Unlock()
	if ids, err := d.docker(nil, "ps", "-aq", "--filter", "label="+labelKey+"="+token); err == nil {
		if f := strings.Fields(string(ids)); len(f) > 0 {
			_, _ = d.docker(nil, append([]string{"rm", "-f", "-v"}, f...)...)
		}
	}
}

// ContainerID returns the ID of the container backing a VM made by NewVM.
func ContainerID(t testing.TB, vm *object.VirtualMachine) string {
	t.Helper()
	id, err := containerID(StartDockerd(t), vm)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func containerID(d *Daemon, vm *object.VirtualMachine) (string, error) {
	vmMu.Lock()
	token, ok := vmLabels[vm.Reference().Value]
	vmMu.Unlock()
	if !ok {
		return "", fmt.Errorf("guesttest: %s was not created by guesttest.NewVM", vm.Reference().Value)
	}
	out, err := d.docker(nil, "ps", "-aq", "--no-trunc", "--filter", "label="+labelKey+"="+token)
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(out))
	if len(f) != 1 {
		return "", fmt.Errorf("guesttest: %d containers for %s", len(f), vm.Reference().Value)
	}
	return f[0], nil
}

// Exec runs a shell script in the VM's container directly (docker exec, not
// vSphere), for test set-up and assertions. It fails t on a non-zero exit.
func Exec(t testing.TB, vm *object.VirtualMachine, script string) string {
	t.Helper()
	d := StartDockerd(t)
	out, err := d.docker(nil, "exec", ContainerID(t, vm), "/bin/sh", "-c", script)
	if err != nil {
		t.Fatalf("guest exec %q: %v", script, err)
	}
	return string(out)
}

// ReadFile returns a guest file's content ("" and false when it is missing).
func ReadFile(t testing.TB, vm *object.VirtualMachine, p string) (string, bool) {
	t.Helper()
	d := StartDockerd(t)
	out, err := d.docker(nil, "exec", ContainerID(t, vm), "cat", p)
	if err != nil {
		return "", false
	}
	return string(out), true
}

// SystemctlCalls returns the systemctl invocations recorded in the guest,
// one argv (joined by spaces) per element, oldest first.
func SystemctlCalls(t testing.TB, vm *object.VirtualMachine) []string {
	t.Helper()
	s, _ := ReadFile(t, vm, SystemctlLog)
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// CountCalls counts the calls (as SystemctlCalls returns them) that start
// with prefix.
func CountCalls(calls []string, prefix string) int {
	n := 0
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// AssertOnlyQueries fails the test when the VM's systemctl was told anything
// but is-enabled/is-active: a VM that must never be touched (a finding's
// original, a skipped VM) may only have been asked.
func AssertOnlyQueries(t testing.TB, vm *object.VirtualMachine, name string) {
	t.Helper()
	for _, c := range SystemctlCalls(t, vm) {
		if !strings.HasPrefix(c, "is-enabled ") && !strings.HasPrefix(c, "is-active ") {
			t.Errorf("%s: systemctl %s (this VM must never be touched)", name, c)
		}
	}
}

// WriteFiles writes files into a running VM's container (docker exec + tar,
// creating parent directories), bypassing vSphere.
func WriteFiles(t testing.TB, vm *object.VirtualMachine, files map[string]File) {
	t.Helper()
	d := StartDockerd(t)
	id, err := containerID(d, vm)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFiles(d, id, files); err != nil {
		t.Fatal(err)
	}
}

func writeFiles(d *Daemon, id string, files map[string]File) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	now := time.Now()
	for _, p := range names {
		if !path.IsAbs(p) {
			return fmt.Errorf("guesttest: guest path %q is not absolute", p)
		}
		var parents []string
		for dir := path.Dir(p); dir != "/" && !dirs[dir]; dir = path.Dir(dir) {
			dirs[dir] = true
			parents = append([]string{dir}, parents...)
		}
		for _, dir := range parents {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(dir, "/") + "/", Mode: 0o755, ModTime: now}); err != nil {
				return err
			}
		}
		f := files[p]
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(p, "/"), Mode: mode, Size: int64(len(f.Content)), ModTime: now}); err != nil {
			return err
		}
		if _, err := tw.Write([]byte(f.Content)); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	// --no-overwrite-dir keeps the modes of existing directories such as /tmp.
	if _, err := d.docker(buf.Bytes(), "exec", "-i", id, "tar", "-x", "--no-overwrite-dir", "-C", "/", "-f", "-"); err != nil {
		return fmt.Errorf("guesttest: writing files: %w", err)
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
