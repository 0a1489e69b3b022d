package objstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/fetch"
)

// A file's failure is permanent when the request is at fault, temporary otherwise: the chain, the
// retry loop and the daemon's answer decide from it.
func TestFileErrorKinds(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want chain.Failure
	}{
		{"refused address", fmt.Errorf("dial: %w", fetch.ErrForbiddenAddress), chain.FailureInput},
		{"scheme", fetch.ErrScheme, chain.FailureInput},
		{"too large", fmt.Errorf("%w: more than 10 bytes", ErrTooLarge), chain.FailureInput},
		{"redirect loop", fetch.ErrTooManyRedirects, chain.FailureInput},
		{"local path refused", ErrLocalPath, chain.FailureInput},
		{"local file missing", &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist}, chain.FailureInput},
		{"404", &fetch.StatusError{Code: 404, Status: "404 Not Found"}, chain.FailureInput},
		{"503", &fetch.StatusError{Code: 503, Status: "503 Service Unavailable"}, chain.FailureUnavailable},
		{"429", &fetch.StatusError{Code: 429, Status: "429 Too Many Requests"}, chain.FailureUnavailable},
		{"timeout", context.DeadlineExceeded, chain.FailureUnavailable},
		{"storage down", errors.New("r2: connection refused"), chain.FailureUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := &chain.StepError{Step: chain.StepUpload, Err: &FileError{Name: "a.glb", Err: tt.err}}
			if got := chain.Classify(err); got != tt.want {
				t.Fatalf("Classify = %q, want %q", got, tt.want)
			}
		})
	}
	if !errors.Is(&fetch.StatusError{Code: 404}, fetch.ErrStatus) {
		t.Error("a StatusError is not ErrStatus")
	}
}
