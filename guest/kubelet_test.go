package guest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/guest"
	"github.com/vmreconcile/vmreconcile/guest/guesttest"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/vsphere"
)

// swapped returns a BIOS UUID with the first three fields byte-swapped, as
// Linux shows product_uuid on older VM hardware.
func swapped(u string) string {
	h := strings.ReplaceAll(u, "-", "")
	rev := func(s string) string {
		var b strings.Builder
		for i := len(s) - 2; i >= 0; i -= 2 {
			b.WriteString(s[i : i+2])
		}
		return b.String()
	}
	h = rev(h[0:8]) + rev(h[8:12]) + rev(h[12:16]) + h[16:]
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// TestProbeKubeletIdentity: the probe reads the kubelet identity of
// container-backed VMs (the client certificate behind the
// kubelet-client-current.pem symlink, the API server of kubelet.conf,
// kubelet.service at boot and now), and reconcile confirms a shared Node
// from the two certificates.
func TestProbeKubeletIdentity(t *testing.T) {
	ctx, c, model := guesttest.Simulator(t)
	const server = "https://10.0.0.100:6443"
	notAfter := time.Now().Add(365 * 24 * time.Hour)
	file, certPEM, keyPEM := guesttest.KubeletClientCert(t, "kwk-1", notAfter)
	node := func(name string, units map[string]guesttest.Unit) guesttest.VMSpec {
		return guesttest.VMSpec{Name: name, Units: units, Files: map[string]string{
			// as the kubelet's certificate manager lays it out
			"/var/lib/kubelet/pki/kubelet-client-2026-01-01-00-00-00.pem": file,
			guesttest.KubeletConf: guesttest.KubeletConfig(server),
		}, Modes: map[string]int64{"/var/lib/kubelet/pki/kubelet-client-2026-01-01-00-00-00.pem": 0o600, guesttest.KubeletConf: 0o600}}
	}
	vms := guesttest.NewVMs(t, ctx, c,
		node("kwk-1", guesttest.KubeletRunning),
		node("kwk-1-clone", map[string]guesttest.Unit{"kubelet.service": {Enabled: "disabled", Active: "inactive"}}),
		guesttest.VMSpec{Name: "cp-embedded", Units: guesttest.KubeletRunning, Files: map[string]string{
			guesttest.KubeletConf: guesttest.KubeletConfig("https://cp.example:6443", certPEM, keyPEM)}},
		guesttest.VMSpec{Name: "plain"},
	)
	for _, vm := range vms[:2] {
		guesttest.Exec(t, vm, "ln -s kubelet-client-2026-01-01-00-00-00.pem "+guesttest.KubeletClientPEM)
	}
	guesttest.RequireGuestPassword(model, password)
	inv, err := vsphere.Inventory(ctx, c, c.ServiceContent.RootFolder, vsphere.InventoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]reconcile.VM{}
	var targets []reconcile.VM
	for _, name := range []string{"kwk-1", "kwk-1-clone", "cp-embedded", "plain"} {
		for _, v := range inv {
			if v.Name == name {
				byName[name] = v
				targets = append(targets, v)
			}
		}
	}
	ids := guest.ProbeAll(ctx, c, targets, func(reconcile.VM) types.BaseGuestAuthentication { return login() }, 4, time.Minute)
	want := []struct{ node, org, server, enabled, active string }{
		{"kwk-1", "system:nodes", server, "yes", "yes"},
		{"kwk-1", "system:nodes", server, "no", "no"},
		{"kwk-1", "system:nodes", "https://cp.example:6443", "yes", "yes"},
		{"", "", "", "unknown", "no"},
	}
	for i, w := range want {
		id := ids[i]
		if id.Error != "" || id.KubeletNode != w.node || id.KubeletOrg != w.org || id.KubeletServer != w.server ||
			id.KubeletEnabled != w.enabled || id.KubeletActive != w.active || id.KubeletCreds != (w.node != "") {
			t.Errorf("%s: %+v, want %+v", targets[i].Name, id, w)
		}
	}

	// The Node kwk-1 alternates between the two VMs; the clone's kubelet
	// reports its systemUUID byte-swapped (older VM hardware).
	wk, cl := byName["kwk-1"], byName["kwk-1-clone"]
	t0 := time.Now().UTC().Add(-time.Minute)
	idn := func(boot, uuid string, cpus int64, at time.Time) reconcile.KubeIdentity {
		return reconcile.KubeIdentity{BootID: boot, SystemUUID: uuid, Hostname: "kwk-1", CPUs: cpus, FirstSeen: at, LastSeen: at.Add(40 * time.Second), Seen: 3}
	}
	kn := reconcile.KubeNode{Name: "kwk-1", Ready: "True",
		Identities: []reconcile.KubeIdentity{idn("boot-a", wk.BIOSUUID, 4, t0), idn("boot-b", swapped(cl.BIOSUUID), 8, t0.Add(10*time.Second))}}
	for k, d := range []int{0, 1, 0, 1, 0} {
		kn.Timeline = append(kn.Timeline, reconcile.Sighting{Time: t0.Add(time.Duration(k) * 10 * time.Second), Description: d, Source: "watch"})
	}
	snap := reconcile.Snapshot{CollectedAt: time.Now().UTC(), VMs: inv, Guests: ids,
		Kubernetes: []reconcile.KubeCluster{{Name: "prod", Server: "10.0.0.100:6443", Nodes: []reconcile.KubeNode{kn}}}}
	res := reconcile.Reconcile(snap, reconcile.History{})
	var f *reconcile.Finding
	for i := range res.Findings {
		if res.Findings[i].Kind == reconcile.KindSharedK8sNode {
			f = &res.Findings[i]
		}
	}
	if f == nil {
		t.Fatalf("no shared-k8s-node: %+v", res.Findings)
	}
	if !f.Confirmed || !f.Dormant || f.Original != "kwk-1" || len(f.VMs) != 2 || f.VMs[1] != "kwk-1-clone" {
		t.Errorf("finding %+v", f)
	}
	ev := strings.Join(f.Evidence, "\n")
	for _, s := range []string{"with the first three fields byte-swapped", "capacity cpu 4 -> 8 -> 4 -> 8 -> 4",
		"guest probe of VM kwk-1-clone", "CN=system:node:kwk-1, O=system:nodes, API server " + server + ", kubelet enabled=no, active=no"} {
		if !strings.Contains(ev, s) {
			t.Errorf("evidence lacks %q:\n%s", s, ev)
		}
	}
	// cp-embedded holds kwk-1's certificate too, but for another API server:
	// not this cluster's Node.
	for _, g := range res.Findings {
		for _, n := range g.VMs {
			if n == "cp-embedded" {
				t.Errorf("%s names cp-embedded, whose certificate is for another cluster", g.Kind)
			}
		}
	}
}
