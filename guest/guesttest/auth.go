package guesttest

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// RequireGuestPassword makes the simulator's guest operations check
// credentials like VMware Tools does: a login whose password is not password
// gets the InvalidGuestLogin fault (no program is started, no file touched).
//
// vcsim itself only rejects an empty user name or password. This replaces
// its GuestProcessManager and GuestFileManager in the registry with wrappers
// (vcsim dispatches a SOAP call by method name on the registered object, so
// the wrappers' methods win and everything else is promoted unchanged).
// Call it again to change the password.
func RequireGuestPassword(model *simulator.Model, password string) {
	reg := model.Map()
	for _, obj := range reg.AllReference("GuestProcessManager") {
		switch pm := obj.(type) {
		case *simulator.GuestProcessManager:
			reg.Put(&checkedProcessManager{GuestProcessManager: pm, password: password})
		case *checkedProcessManager:
			pm.password = password
		}
	}
	for _, obj := range reg.AllReference("GuestFileManager") {
		switch fm := obj.(type) {
		case *simulator.GuestFileManager:
			reg.Put(&checkedFileManager{GuestFileManager: fm, password: password})
		case *checkedFileManager:
			fm.password = password
		}
	}
}

func loginFault(auth types.BaseGuestAuthentication, password string) *soap.Fault {
	if a, ok := auth.(*types.NamePasswordAuthentication); ok && a.Username != "" && a.Password == password {
		return nil
	}
	return simulator.Fault("", new(types.InvalidGuestLogin))
}

type checkedProcessManager struct {
	*simulator.GuestProcessManager // first field: vcsim finds the mo type through it
	password                       string
}

func (m *checkedProcessManager) StartProgramInGuest(ctx *simulator.Context, req *types.StartProgramInGuest) soap.HasFault {
	if f := loginFault(req.Auth, m.password); f != nil {
		return &methods.StartProgramInGuestBody{Fault_: f}
	}
	return m.GuestProcessManager.StartProgramInGuest(ctx, req)
}

func (m *checkedProcessManager) ListProcessesInGuest(ctx *simulator.Context, req *types.ListProcessesInGuest) soap.HasFault {
	if f := loginFault(req.Auth, m.password); f != nil {
		return &methods.ListProcessesInGuestBody{Fault_: f}
	}
	return m.GuestProcessManager.ListProcessesInGuest(ctx, req)
}

func (m *checkedProcessManager) TerminateProcessInGuest(ctx *simulator.Context, req *types.TerminateProcessInGuest) soap.HasFault {
	if f := loginFault(req.Auth, m.password); f != nil {
		return &methods.TerminateProcessInGuestBody{Fault_: f}
	}
	return m.GuestProcessManager.TerminateProcessInGuest(ctx, req)
}

type checkedFileManager struct {
	*simulator.GuestFileManager
	password string
}

func (m *checkedFileManager) InitiateFileTransferToGuest(ctx *simulator.Context, req *types.InitiateFileTransferToGuest) soap.HasFault {
	if f := loginFault(req.Auth, m.password); f != nil {
		return &methods.InitiateFileTransferToGuestBody{Fault_: f}
	}
	return m.GuestFileManager.InitiateFileTransferToGuest(ctx, req)
}

func (m *checkedFileManager) InitiateFileTransferFromGuest(ctx *simulator.Context, req *types.InitiateFileTransferFromGuest) soap.HasFault {
	if f := loginFault(req.Auth, m.password); f != nil {
		return &methods.InitiateFileTransferFromGuestBody{Fault_: f}
	}
	return m.GuestFileManager.InitiateFileTransferFromGuest(ctx, req)
}

func (m *checkedFileManager) CreateTemporaryFileInGuest(ctx *simulator.Context, req *types.CreateTemporaryFileInGuest) soap.HasFault {
	if f := loginFault(req.Auth, m.password); f != nil {
		return &methods.CreateTemporaryFileInGuestBody{Fault_: f}
	}
	return m.GuestFileManager.CreateTemporaryFileInGuest(ctx, req)
}

func (m *checkedFileManager) CreateTemporaryDirectoryInGuest(ctx *simulator.Context, req *types.CreateTemporaryDirectoryInGuest) soap.HasFault {
	if f := loginFault(req.Auth, m.password); f != nil {
		return &methods.CreateTemporaryDirectoryInGuestBody{Fault_: f}
	}
	return m.GuestFileManager.CreateTemporaryDirectoryInGuest(ctx, req)
}

func (m *checkedFileManager) ListFilesInGuest(ctx *simulator.Context, req *types.ListFilesInGuest) soap.HasFault {
	if f := loginFault(req.Auth, m.password); f != nil {
		return &methods.ListFilesInGuestBody{Fault_: f}
	}
	return m.GuestFileManager.ListFilesInGuest(ctx, req)
}

func (m *checkedFileManager) DeleteFileInGuest(ctx *simulator.Context, req *types.DeleteFileInGuest) soap.HasFault {
	if f := loginFault(req.Auth, m.password); f != nil {
		return &methods.DeleteFileInGuestBody{Fault_: f}
	}
	return m.GuestFileManager.DeleteFileInGuest(ctx, req)
}

func (m *checkedFileManager) DeleteDirectoryInGuest(ctx *simulator.Context, req *types.DeleteDirectoryInGuest) soap.HasFault {
	if f := loginFault(req.Auth, m.password); f != nil {
		return &methods.DeleteDirectoryInGuestBody{Fault_: f}
	}
	return m.GuestFileManager.DeleteDirectoryInGuest(ctx, req)
}

func (m *checkedFileManager) MakeDirectoryInGuest(ctx *simulator.Context, req *types.MakeDirectoryInGuest) soap.HasFault {
	if f := loginFault(req.Auth, m.password); f != nil {
		return &methods.MakeDirectoryInGuestBody{Fault_: f}
	}
	return m.GuestFileManager.MakeDirectoryInGuest(ctx, req)
}

func (m *checkedFileManager) MoveFileInGuest(ctx *simulator.Context, req *types.MoveFileInGuest) soap.HasFault {
	if f := loginFault(req.Auth, m.password); f != nil {
		return &methods.MoveFileInGuestBody{Fault_: f}
	}
	return m.GuestFileManager.MoveFileInGuest(ctx, req)
}

func (m *checkedFileManager) MoveDirectoryInGuest(ctx *simulator.Context, req *types.MoveDirectoryInGuest) soap.HasFault {
	if f := loginFault(req.Auth, m.password); f != nil {
		return &methods.MoveDirectoryInGuestBody{Fault_: f}
	}
	return m.GuestFileManager.MoveDirectoryInGuest(ctx, req)
}

func (m *checkedFileManager) ChangeFileAttributesInGuest(ctx *simulator.Context, req *types.ChangeFileAttributesInGuest) soap.HasFault {
	if f := loginFault(req.Auth, m.password); f != nil {
		return &methods.ChangeFileAttributesInGuestBody{Fault_: f}
	}
	return m.GuestFileManager.ChangeFileAttributesInGuest(ctx, req)
}
