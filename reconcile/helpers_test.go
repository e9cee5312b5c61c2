package reconcile

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Builders: small, so that test cases read like the story they tell.

var t0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

type vmOpt func(*VM)

// mkVM returns a powered-on VM whose guest hostname is its name, 2 vCPU,
// 4096 MB, with a unique BIOS UUID and MAC.
func mkVM(name string, opts ...vmOpt) VM {
	v := VM{
		VCenter: "vc1", Name: name, Path: "/DC0/vm/" + name, Ref: "vm-" + name,
		BIOSUUID: "bios-" + name, InstanceUUID: "inst-" + name,
		NumCPU: 2, MemoryMB: 4096, PowerState: "poweredOn", ToolsRunning: true,
		GuestHostname: name, MACs: []string{"00:50:56:" + name}, Created: t0.Add(-30 * 24 * time.Hour),
	}
	for _, o := range opts {
		o(&v)
	}
	return v
}

func ip(ips ...string) vmOpt { return func(v *VM) { v.IPs = ips } }
func host(h string) vmOpt    { return func(v *VM) { v.GuestHostname = h } }
func mac(m ...string) vmOpt  { return func(v *VM) { v.MACs = m } }
func bios(u string) vmOpt    { return func(v *VM) { v.BIOSUUID = u } }
func res(c, mb int32) vmOpt  { return func(v *VM) { v.NumCPU, v.MemoryMB = c, mb } }
func off() vmOpt             { return func(v *VM) { v.PowerState = "poweredOff"; v.IPs = nil } }
func noTools() vmOpt {
	return func(v *VM) { v.ToolsRunning = false; v.GuestHostname = ""; v.IPs = nil }
}
func template() vmOpt {
	return func(v *VM) { v.Template = true; v.PowerState = "poweredOff"; v.IPs = nil }
}
func copyOf(src VM) vmOpt { return func(v *VM) { v.Lineage = lin(src) } }
func lin(src VM) *Lineage {
	return &Lineage{SourceRef: src.Ref, SourceName: src.Name, Kind: "clone", Time: t0.Add(-time.Hour)}
}
func node(id string, descs []Description, seq ...int) Node {
	return nodeIn("ready", id, descs, seq...)
}

// d is a description: hostname, CPUs, memory in MiB, address.
func d(h string, cpus int64, memMiB int64, addr string) Description {
	return Description{Hostname: h, NanoCPUs: cpus * 1e9, MemoryBytes: memMiB << 20, Addr: addr, EngineVersion: "28.5.2"}
}

func ds(l ...Description) []Description { return l }

// nodeIn builds a node whose timeline visits the descriptions in seq (default:
// each once, in order), one sighting every 5 s, and fills the descriptions'
// FirstSeen, LastSeen and Seen from it.
func nodeIn(state, id string, descs []Description, seq ...int) Node {
	if len(seq) == 0 {
		for i := range descs {
			seq = append(seq, i)
		}
	}
	n := Node{ID: id, Role: "worker", State: state, Availability: "active", Descriptions: descs}
	for k, i := range seq {
		tm := t0.Add(time.Duration(k) * 5 * time.Second)
		if len(n.Timeline) == 0 || n.Timeline[len(n.Timeline)-1].Description != i {
			n.Timeline = append(n.Timeline, Sighting{Time: tm, Description: i, Source: "list"})
		}
		dd := &n.Descriptions[i]
		if dd.FirstSeen.IsZero() {
			dd.FirstSeen = tm
		}
		dd.LastSeen = tm
		dd.Seen++
	}
	return n
}

func snap(vms []VM, nodes ...Node) Snapshot {
	return Snapshot{
		CollectedAt: t0.Add(time.Hour), VCenters: []string{"vc1"}, VMs: vms,
		Swarms: []Swarm{{Endpoint: "tcp://mgr-01:2376", ClusterID: "cl-1", ObservedFrom: t0, ObservedTo: t0.Add(10 * time.Minute), Samples: 120, Nodes: nodes}},
	}
}

func vms(l ...VM) []VM { return l }

// genSnapshot builds a large synthetic inventory: nVMs VMs (a few templates,
// a few powered off, some duplicate hostnames), nNodes swarm nodes matched to
// the first VMs, every 50th node shared with a flipping clone.
func genSnapshot(nVMs, nNodes int, seed uint64) Snapshot {
	r := rand.New(rand.NewPCG(seed, 1))
	ipOf := func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i/65536, (i/256)%256, i%256+1) }
	var s Snapshot
	s.CollectedAt = t0
	for i := range nVMs {
		name := fmt.Sprintf("vm-%05d", i)
		v := mkVM(name, ip(ipOf(i), "172.17.0.1"), res(int32(2+r.IntN(3)*2), int32(4096*(1+r.IntN(4)))))
		switch {
		case i%97 == 0:
			v.Template = true
			v.PowerState = "poweredOff"
			v.IPs = nil
		case i%31 == 0:
			v.PowerState = "poweredOff"
			v.IPs = nil
		case i%211 == 0:
			v.GuestHostname = fmt.Sprintf("vm-%05d", i-1) // duplicate hostname
		}
		if i > 0 && i%53 == 0 {
			v.Lineage = lin(s.VMs[r.IntN(i)])
		}
		s.VMs = append(s.VMs, v)
	}
	var nodes []Node
	for i := range nNodes {
		v := s.VMs[i]
		desc := d(v.GuestHostname, int64(v.NumCPU), int64(v.MemoryMB)-200, ipOf(i))
		if i%50 == 7 && i+nNodes < nVMs {
			// a powered-on clone of this VM answers as the same node
			c := &s.VMs[i+nNodes]
			c.Lineage = lin(v)
			c.PowerState, c.Template, c.IPs = "poweredOn", false, []string{ipOf(i + nNodes)}
			alt := d(c.GuestHostname, int64(c.NumCPU), int64(c.MemoryMB)-200, ipOf(i+nNodes))
			nodes = append(nodes, node(fmt.Sprintf("node%05d", i), ds(desc, alt), 0, 1, 0, 1, 0, 1))
			continue
		}
		if i%101 == 0 {
			desc.Hostname = fmt.Sprintf("physical-%d", i)
			desc.Addr = fmt.Sprintf("192.168.0.%d", i%250+1)
		}
		nodes = append(nodes, node(fmt.Sprintf("node%05d", i), ds(desc)))
	}
	s.Swarms = []Swarm{{Endpoint: "tcp://mgr:2376", ClusterID: "cl-1", Nodes: nodes}}
	return s
}
