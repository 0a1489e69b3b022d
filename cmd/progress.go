package cmd

import (
	"io"
	"sync"
	"time"

	// progressbar: a maintained, dependency-light bar that renders on any io.Writer, throttles its
	// redraws, shows bytes and rates, handles an unknown total (a spinner) and is safe for
	// concurrent use — what parallel uploads need, without drawing terminal codes by hand.
	"github.com/schollz/progressbar/v3"

	"github.com/figurative/figsupport/internal/objstore"
)

// progressOn: bars only where a person watches: stderr a terminal, text output.
func (g *Globals) progressOn() bool { return !g.JSON() && g.Terminal(g.ErrOut) }

// barMinBytes: uploads smaller than this finish before a bar would tell anything.
const barMinBytes = 1 << 20

func newBar(w io.Writer, max int64, description string, bytes bool) *progressbar.ProgressBar {
	return progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowBytes(bytes),
		progressbar.OptionShowCount(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

// uploadBar is one bar for the bytes of every file being uploaded: files go in parallel, so one
// total tells more than a line each. Its total grows as files open (a URL's size is known from
// its headers, or never: then the bar spins).
type uploadBar struct {
	w     io.Writer
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	files map[string]*objstore.Progress
}

// uploadProgress is the uploader's progress callback when a bar should be shown, else nil.
func (g *Globals) uploadProgress() *uploadBar {
	if !g.progressOn() {
		return nil
	}
	return &uploadBar{w: g.ErrOut, files: map[string]*objstore.Progress{}}
}

func (u *uploadBar) report(p objstore.Progress) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.files[p.Key] = &p
	var total, read int64
	done := true
	for _, f := range u.files {
		read += f.Read
		if f.Size < 0 || total < 0 {
			total = -1
		} else {
			total += f.Size
		}
		done = done && f.Done
	}
	if u.bar == nil && read < barMinBytes && !(total >= barMinBytes) {
		if done {
			clear(u.files)
		}
		return
	}
	if u.bar == nil {
		u.bar = newBar(u.w, total, "uploading", true)
	} else if u.bar.GetMax64() != total {
		u.bar.ChangeMax64(total)
	}
	_ = u.bar.Set64(read)
	if done {
		_ = u.bar.Finish()
		u.bar = nil
		clear(u.files)
	}
}
