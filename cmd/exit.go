package cmd

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/fatih/color"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/classify"
	"github.com/figurative/figsupport/internal/config"
	"github.com/figurative/figsupport/internal/payload"
)

// Exit codes (DESIGN section 2).
const (
	ExitOK      = 0
	ExitFailed  = 1 // failed at run time; the request is kept in the journal and can be retried
	ExitUsage   = 2 // bad input or usage
	ExitConfig  = 4 // configuration or credentials
	exitUnknown = ExitFailed
)

var (
	errUsage = errors.New("usage error")
	// errSilent is returned after a command already printed its result (an incomplete run): only
	// the exit code remains to give.
	errSilent = errors.New("already reported")
	// ErrCredentials marks a service refusing our credentials; backends' errors are mapped to it
	// where they are wired.
	ErrCredentials = errors.New("credentials rejected")
)

type usageError struct{ err error }

func (e usageError) Error() string         { return e.err.Error() }
func (e usageError) Unwrap() []error       { return []error{e.err, errUsage} }
func usageErr(err error) error             { return usageError{err} }
func usagef(format string, a ...any) error { return usageErr(fmt.Errorf(format, a...)) }

type silentError struct{ code int }

func (e silentError) Error() string        { return "exit " + fmt.Sprint(e.code) }
func (e silentError) Is(target error) bool { return target == errSilent }

// redacted keeps an error's chain but replaces its text (secrets removed).
type redacted struct {
	err error
	msg string
}

func (r redacted) Error() string { return r.msg }
func (r redacted) Unwrap() error { return r.err }

// credentialError is implemented by each service's error type (hubspot, clickup, notify): true
// when the service refused our credentials.
type credentialError interface{ Credentials() bool }

func exitCodeOf(err error) int {
	var s silentError
	var ce credentialError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &s):
		return s.code
	case errors.Is(err, errUsage), errors.Is(err, payload.ErrInvalid), errors.Is(err, chain.ErrConflict):
		return ExitUsage
	case errors.Is(err, config.ErrConfig), errors.Is(err, classify.ErrConfig), errors.Is(err, ErrCredentials):
		return ExitConfig
	case errors.As(err, &ce) && ce.Credentials():
		return ExitConfig
	case chain.Classify(err) == chain.FailureInput:
		// The request itself is refused (a file URL on a refused address, a file too large):
		// running it again as it is cannot help.
		return ExitUsage
	}
	return exitUnknown
}

// printError writes err on stderr: text for people, one JSON object with --output json.
func printError(g *Globals, err error) {
	var ve *payload.ValidationError
	var ce *config.Error
	field := ""
	switch {
	case errors.As(err, &ve):
		field = ve.Field
	case errors.As(err, &ce):
		field = ce.Key
	}
	if g.JSON() {
		b, _ := json.Marshal(struct {
			Error    string `json:"error"`
			Field    string `json:"field,omitempty"`
			ExitCode int    `json:"exit_code"`
		}{err.Error(), field, exitCodeOf(err)})
		fmt.Fprintln(g.ErrOut, string(b))
		return
	}
	prefix := "error:"
	if isTTY(g.ErrOut) {
		prefix = color.New(color.FgRed, color.Bold).Sprint(prefix)
	}
	fmt.Fprintln(g.ErrOut, "figsupport:", prefix, err)
}
