package chain

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"

	"github.com/figurative/figsupport/internal/payload"
)

// Failure is the kind of a failure: what the chain, the retry loop, `requests list`, the daemon's
// status codes and the exit code all decide from.
type Failure string

// Failure kinds. The first three are permanent: trying again without a change (to the request or
// to the configuration) gives the same answer, so they fail at once and are not retried
// automatically. The last two are temporary.
const (
	FailureInput       Failure = "input"       // the request's own content is refused: a file URL on a refused address, a file too large
	FailureCredentials Failure = "credentials" // a service refused our credentials
	FailureRejected    Failure = "rejected"    // a service refused the call (a 4xx that will not change)
	FailureRateLimited Failure = "rate_limited"
	FailureUnavailable Failure = "unavailable" // 5xx, network, timeouts, anything unknown
)

// PermanentFailures are the failures that trying again will not mend.
var PermanentFailures = []Failure{FailureInput, FailureCredentials, FailureRejected}

// Permanent reports a failure that trying again will not mend.
func (f Failure) Permanent() bool {
	return slices.Contains(PermanentFailures, f)
}

// Backends' errors say what they are through these methods; each service's error type implements
// those that apply.
type (
	inputError interface {
		// InputError: the request's own content is at fault.
		InputError() bool
	}
	credentialError interface{ Credentials() bool }
	rateLimitError  interface{ RateLimited() bool }
	temporaryError  interface{ Temporary() bool }
)

// Classify says what kind of failure err is. An error that says nothing of itself counts as
// temporary: retrying something permanent costs a few attempts, giving up on something temporary
// loses a request.
func Classify(err error) Failure {
	var (
		ie inputError
		ce credentialError
		re rateLimitError
		te temporaryError
		ne net.Error
	)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, payload.ErrInvalid), errors.As(err, &ie) && ie.InputError():
		return FailureInput
	case errors.As(err, &ce) && ce.Credentials():
		return FailureCredentials
	case errors.As(err, &re) && re.RateLimited():
		return FailureRateLimited
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne):
		return FailureUnavailable
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// A connection that ended without an answer: the service may or may not have done the
		// work, which the step's own repeat check (or, for an e-mail, a counted repeat) settles.
		// Backends that will not repeat such a call at once say it is not Temporary; it is not a
		// refusal either.
		return FailureUnavailable
	case errors.As(err, &te):
		if te.Temporary() {
			return FailureUnavailable
		}
		return FailureRejected
	}
	return FailureUnavailable
}
