package chain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/figurative/figsupport/internal/payload"
)

// kindErr says of itself what the backends' error types say.
type kindErr struct {
	input, credentials, rateLimited, temporary bool
}

func (e kindErr) Error() string     { return "backend failure" }
func (e kindErr) InputError() bool  { return e.input }
func (e kindErr) Credentials() bool { return e.credentials }
func (e kindErr) RateLimited() bool { return e.rateLimited }
func (e kindErr) Temporary() bool   { return e.temporary }

// wrapsEOF is a backend error that will not repeat the call at once (the work may be done) around
// a connection that ended without an answer: an SMTP message whose 250 never came.
type wrapsEOF struct{ err error }

func (e wrapsEOF) Error() string   { return "smtp data: " + e.err.Error() }
func (e wrapsEOF) Unwrap() error   { return e.err }
func (e wrapsEOF) Temporary() bool { return false }

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Failure
	}{
		{"nil", nil, ""},
		{"invalid payload", fmt.Errorf("upload: %w", payload.ErrInvalid), FailureInput},
		{"input", kindErr{input: true}, FailureInput},
		{"credentials", kindErr{credentials: true}, FailureCredentials},
		{"rate limited", kindErr{rateLimited: true, temporary: true}, FailureRateLimited},
		{"temporary", kindErr{temporary: true}, FailureUnavailable},
		{"refused", kindErr{}, FailureRejected},
		{"cancelled", &StepError{Step: StepNote, Err: context.Canceled}, FailureUnavailable},
		{"network", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, FailureUnavailable},
		{"answer lost after the work", &StepError{Step: StepNotify, Err: wrapsEOF{io.EOF}}, FailureUnavailable},
		{"answer cut short", wrapsEOF{io.ErrUnexpectedEOF}, FailureUnavailable},
		{"unknown", errors.New("something"), FailureUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}
