package cmd

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fatih/color"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/classify"
	"github.com/figurative/figsupport/internal/config"
	"github.com/figurative/figsupport/internal/payload"
)

// Exit codes (DESIGN section 2, the README's table).
const (
	ExitOK     = 0
	ExitFailed = 1 // failed at run time; the request is kept in the journal and can be retried
	ExitUsage  = 2 // bad input or usage
	ExitConfig = 4 // configuration or credentials
)

var (
	errUsage = errors.New("usage error")
	// errSilent is returned after a command already printed its result (an incomplete run, a
	// failed doctor check): only the exit code remains to give.
	errSilent = errors.New("already reported")
)

// usageError is bad input on the command line; field names the flag or argument at fault.
type usageError struct {
	field string
	err   error
}

func (e *usageError) Error() string   { return e.err.Error() }
func (e *usageError) Unwrap() []error { return []error{e.err, errUsage} }

func usageErr(err error) error             { return &usageError{err: err} }
func usagef(format string, a ...any) error { return usageErr(fmt.Errorf(format, a...)) }

// fieldErr is a usage error about one flag or argument: "--email: want an e-mail address".
func fieldErr(field, format string, a ...any) error {
	return &usageError{field: field, err: fmt.Errorf("%s: "+format, append([]any{field}, a...)...)}
}

// configErr marks err as a configuration problem (exit 4), for a package whose errors name the
// key at fault in their text but have no type of their own.
type configErr struct{ err error }

func (e configErr) Error() string        { return e.err.Error() }
func (e configErr) Unwrap() error        { return e.err }
func (e configErr) Is(target error) bool { return target == config.ErrConfig }

// cobraRequired is the annotation MarkFlagRequired puts on a flag.
const cobraRequired = cobra.BashCompOneRequiredFlag

type silentError struct{ code int }

func (e silentError) Error() string        { return fmt.Sprintf("exit %d", e.code) }
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

// exitCodeOf is the one map from errors to exit codes.
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
	case errors.Is(err, config.ErrConfig), errors.Is(err, classify.ErrConfig):
		return ExitConfig
	case errors.As(err, &ce) && ce.Credentials():
		return ExitConfig
	case chain.Classify(err) == chain.FailureInput:
		// The request itself is refused (a file URL on a refused address, a file too large):
		// running it again as it is cannot help.
		return ExitUsage
	}
	return ExitFailed
}

// fieldOf names what is at fault: the payload field, the configuration key, the flag or argument.
func fieldOf(err error) string {
	var ve *payload.ValidationError
	var ce *config.Error
	var ue *usageError
	var ne *pflag.NotExistError
	var ie *pflag.InvalidValueError
	var re *pflag.ValueRequiredError
	switch {
	case errors.As(err, &ve):
		return ve.Field
	case errors.As(err, &ce):
		return ce.Key
	case errors.Is(err, chain.ErrConflict):
		return "request_id"
	case errors.As(err, &ne):
		if ne.GetSpecifiedShortnames() != "" {
			return "-" + ne.GetSpecifiedName() // one letter of a group like -vx
		}
		return "--" + ne.GetSpecifiedName()
	case errors.As(err, &ie):
		return "--" + ie.GetFlag().Name
	case errors.As(err, &re):
		return "--" + re.GetFlag().Name
	case errors.As(err, &ue):
		return ue.field
	}
	return ""
}

// errorJSON is the one object `-o json` prints on stdout when a command fails. Every key is
// always present: field is "" when nothing in particular is at fault.
type errorJSON struct {
	Error    string `json:"error"`
	Field    string `json:"field"`
	ExitCode int    `json:"exit_code"`
}

// printError reports err: one JSON object on stdout with --output json (stdout then always holds
// exactly one object, the answer or the error), else a line on stderr.
func printError(g *Globals, err error, asJSON bool) {
	if asJSON {
		_ = writeJSON(g.Out, errorJSON{Error: err.Error(), Field: fieldOf(err), ExitCode: exitCodeOf(err)})
		return
	}
	prefix := "error:"
	if g.Terminal(g.ErrOut) && !noColor(g) {
		prefix = color.New(color.FgRed, color.Bold).Sprint(prefix)
	}
	fmt.Fprintln(g.ErrOut, "figsupport:", prefix, err)
}

// jsonRequested finds -o/--output json in args, for errors raised before the flags are parsed
// (an unknown flag, an unknown command) or by the parse itself.
func jsonRequested(args []string) bool {
	for i, a := range args {
		switch {
		case a == "--":
			return false
		case a == "-o" || a == "--output":
			if i+1 < len(args) {
				return args[i+1] == "json"
			}
		case a == "-ojson", a == "-o=json", a == "--output=json":
			return true
		}
	}
	return false
}

// requiredFlags checks the flags marked required, naming the first one missing: cobra's own check
// says the same without telling which flag is at fault.
func requiredFlags(fs *pflag.FlagSet) error {
	var missing []string
	fs.VisitAll(func(f *pflag.Flag) {
		if v, ok := f.Annotations[cobraRequired]; ok && len(v) > 0 && v[0] == "true" && !f.Changed {
			missing = append(missing, "--"+f.Name)
		}
	})
	if len(missing) == 0 {
		return nil
	}
	return &usageError{field: missing[0], err: fmt.Errorf("required flag(s) %s not set", strings.Join(missing, ", "))}
}
