package mailbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// State remembers, between passes, which messages of a folder failed, so that the next pass takes
// new messages first and a few messages failing again and again cannot hold the queue. It is an
// ordering hint only: losing it loses no mail (unread messages are found by the server's own
// unread flag) and processes nothing twice (the handler is idempotent).
//
// Message ids are only meaningful within a folder's generation (IMAP UIDVALIDITY): when the
// generation changes, what was remembered is dropped and every unread message counts as new.
type State interface {
	Load(key string) (Folder, error)
	Save(key string, f Folder) error
}

// Folder is what is remembered about one folder.
type Folder struct {
	Generation string             `json:"generation"`
	Failed     map[string]Failure `json:"failed,omitempty"`
}

// Failure is a message left unread after a failure.
type Failure struct {
	Attempts int       `json:"attempts"`
	Last     time.Time `json:"last"`
	Error    string    `json:"error,omitempty"`
}

// Bounds of what is remembered: a message failing for a month, or one of more than maxRemembered,
// is forgotten (it is still retried, just no longer placed after the new ones).
const (
	forgetAfter   = 30 * 24 * time.Hour
	maxRemembered = 1000
)

func (f *Folder) prune(now time.Time) {
	for id, x := range f.Failed {
		if now.Sub(x.Last) > forgetAfter {
			delete(f.Failed, id)
		}
	}
	for len(f.Failed) > maxRemembered {
		var oldest string
		for id, x := range f.Failed {
			if oldest == "" || x.Last.Before(f.Failed[oldest].Last) {
				oldest = id
			}
		}
		delete(f.Failed, oldest)
	}
}

// MemoryState keeps the state in memory: enough for the daemon, whose passes share one process.
type MemoryState struct {
	mu sync.Mutex
	m  map[string]Folder
}

// NewMemoryState returns an empty in-memory state.
func NewMemoryState() *MemoryState { return &MemoryState{m: map[string]Folder{}} }

// Load returns a copy of the folder's state.
func (s *MemoryState) Load(key string) (Folder, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key].clone(), nil
}

// Save replaces the folder's state.
func (s *MemoryState) Save(key string, f Folder) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = f.clone()
	return nil
}

func (f Folder) clone() Folder {
	c := Folder{Generation: f.Generation, Failed: make(map[string]Failure, len(f.Failed))}
	for k, v := range f.Failed {
		c.Failed[k] = v
	}
	return c
}

// FileState keeps the state in a JSON file (<data dir>/mailbox-state.json), so that `mail poll`
// run by cron remembers between runs. Writes replace the file atomically.
type FileState struct {
	Path string
	mu   sync.Mutex
}

type stateFile struct {
	Version int               `json:"version"`
	Folders map[string]Folder `json:"folders"`
}

func (s *FileState) read() (stateFile, error) {
	sf := stateFile{Version: 1, Folders: map[string]Folder{}}
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return sf, nil
	}
	if err != nil {
		return sf, err
	}
	if err := json.Unmarshal(b, &sf); err != nil {
		return stateFile{Version: 1, Folders: map[string]Folder{}}, fmt.Errorf("%s: %w", s.Path, err)
	}
	if sf.Folders == nil {
		sf.Folders = map[string]Folder{}
	}
	return sf, nil
}

// Load reads the folder's state; a missing file is an empty state.
func (s *FileState) Load(key string) (Folder, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sf, err := s.read()
	return sf.Folders[key].clone(), err
}

// Save writes the folder's state, keeping the other folders'.
func (s *FileState) Save(key string, f Folder) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sf, _ := s.read() // an unreadable file is replaced
	sf.Folders[key] = f
	b, err := json.MarshalIndent(sf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.Path), ".mailbox-state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.Path)
}
