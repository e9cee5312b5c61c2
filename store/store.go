package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Errors returned by the store. Test with errors.Is.
var (
	// ErrLocked: an exclusive Open found the store held by another process.
	// The error's message names the path and the holder's pid.
	ErrLocked = errors.New("store is in use by another vmreconcile process")
	// ErrReadOnly: a write was attempted on a store opened with Options.ReadOnly.
	ErrReadOnly = errors.New("store is open read-only")
	// ErrNotFound: the subject, finding, journal intent or probe does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAmbiguous: a Timeline subject matched more than one node or VM.
	ErrAmbiguous = errors.New("ambiguous subject")
	// ErrSchema: the file's schema is newer than this binary knows, or (read-only
	// opens, which never migrate) older.
	ErrSchema = errors.New("store schema version mismatch")
)

// LockedError is the error an exclusive Open returns when another process
// holds the store. errors.Is(err, ErrLocked) is true.
type LockedError struct {
	Path string
	PID  int // 0 when the holder's pid could not be read
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("store %s is in use by another vmreconcile process (pid %d)", e.Path, e.PID)
	}
	return fmt.Sprintf("store %s is in use by another vmreconcile process (pid unknown)", e.Path)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Options says how to open a store.
type Options struct {
	// Exclusive takes an advisory lock (flock on PATH+".lock") for the Store's
	// lifetime, so that a second exclusive Open (a second daemon) fails with
	// ErrLocked. Read-only and non-exclusive opens ignore the lock.
	Exclusive bool
	// ReadOnly opens an existing store for reading only (the history command,
	// audit reading history): no lock, no migration, no writes. It works while
	// a daemon holds the store. A missing file is an error wrapping
	// fs.ErrNotExist.
	ReadOnly bool
	// BusyTimeout is how long a statement waits for another process's write
	// transaction before failing with SQLITE_BUSY. Default 10s.
	BusyTimeout time.Duration
	// Now is the clock used for alert marks, journal and probe times left
	// zero, and migration stamps. Default time.Now.
	Now func() time.Time
}

// Store is the history store. Its methods are safe for concurrent use.
type Store struct {
	path     string
	db       *sql.DB
	readOnly bool
	now      func() time.Time
	lock     *fileLock
	closed   atomic.Bool
}

// Open opens (creating and migrating when writable) the store at path.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("store: empty path")
	}
	if opts.Exclusive && opts.ReadOnly {
		return nil, errors.New("store: Exclusive and ReadOnly are mutually exclusive")
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{path: path, readOnly: opts.ReadOnly, now: opts.Now}

	if opts.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("store %s does not exist (no run has been recorded yet): %w", path, fs.ErrNotExist)
			}
			return nil, fmt.Errorf("store %s: %w", path, err)
		}
	} else if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("store %s: %w", path, err)
		}
	}

	if opts.Exclusive {
		l, err := acquireLock(path)
		if err != nil {
			return nil, err
		}
		s.lock = l
	}

	db, err := sql.Open("sqlite", dsn(path, opts))
	if err != nil {
		s.releaseLock()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	s.db = db
	if opts.ReadOnly {
		db.SetMaxOpenConns(4)
	} else {
		// One connection: every write is serialised inside the process, so
		// this process never waits on itself; other processes are handled by
		// WAL (readers never block) and BEGIN IMMEDIATE + busy_timeout.
		db.SetMaxOpenConns(1)
	}
	db.SetConnMaxIdleTime(0)

	ctx := context.Background()
	if err := db.PingContext(ctx); err != nil {
		s.closeQuietly()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	if opts.ReadOnly {
		err = s.checkVersion(ctx)
	} else {
		err = s.migrate(ctx)
	}
	if err != nil {
		s.closeQuietly()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	return s, nil
}

func dsn(path string, opts Options) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", opts.BusyTimeout.Milliseconds()))
	if opts.ReadOnly {
		q.Set("mode", "ro")
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "journal_mode(WAL)")
		// FULL: a committed journal intent must be on disk before the action
		// it announces is taken, even across a power loss.
		q.Add("_pragma", "synchronous(FULL)")
		q.Set("_txlock", "immediate")
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	return u.String()
}

// Path returns the store's file path.
func (s *Store) Path() string { return s.path }

// ReadOnly reports whether the store was opened read-only.
func (s *Store) ReadOnly() bool { return s.readOnly }

// Close closes the database and releases the exclusive lock, if held.
//
// Close may race with a method still running in another goroutine (the
// daemon gives up on a job that ignores cancellation and its caller closes
// the store): s.db is therefore never cleared here, so such a call fails
// with "sql: database is closed" instead of dereferencing nil.
func (s *Store) Close() error {
	if s == nil || s.db == nil || !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	var err error
	if !s.readOnly {
		_, _ = s.db.Exec("PRAGMA optimize")
	}
	err = s.db.Close()
	if lerr := s.releaseLock(); err == nil {
		err = lerr
	}
	return err
}

func (s *Store) closeQuietly() {
	if s.db != nil {
		_ = s.db.Close()
		s.db = nil
	}
	_ = s.releaseLock()
}

func (s *Store) releaseLock() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.release()
	s.lock = nil
	return err
}

func (s *Store) writable() error {
	if s.readOnly {
		return fmt.Errorf("store %s: %w", s.path, ErrReadOnly)
	}
	return nil
}

// withTx runs fn in one write transaction (BEGIN IMMEDIATE), committing when
// fn returns nil.
func (s *Store) withTx(ctx context.Context, fn func(*sql.Tx) error) error {
	if err := s.writable(); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Timestamps are stored as INTEGER Unix nanoseconds (UTC); the zero time is
// stored as NULL.
func t2i(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func i2t(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// since2i is the lower bound for "time >= since" queries: zero means all.
func since2i(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixNano()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
