// Package vsphere reads what vmreconcile needs from a vCenter: every VM and
// template with its identity (Inventory) and where VMs were copied from
// (Lineage).
//
// Both are built for large inventories. Inventory costs one ContainerView and
// one paged property collection however many VMs there are: no per-VM round
// trips, and each page is decoded into reconcile.VM values and dropped before
// the next one is asked for. Lineage reads the event history through a paged
// EventHistoryCollector, never QueryEvents (which caps what it returns).
//
// sim.go holds small helpers that build test inventories in vcsim; they are
// exported because the demo command uses them too.
package vsphere
