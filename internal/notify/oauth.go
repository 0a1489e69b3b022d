package notify

import "github.com/figurative/figsupport/internal/oauth"

// Scopes of the client-credentials tokens.
const (
	ScopeSMTP  = oauth.ScopeOutlook
	ScopeGraph = oauth.ScopeGraph
)

// OAuthConfig is the Microsoft Entra app registration used for XOAUTH2 and Graph.
type OAuthConfig = oauth.Config

// tokens is the shared client-credentials token source (internal/oauth), under the name the
// transports use.
type tokens = oauth.TokenSource

func newTokens(o OAuthConfig, scope string) (*tokens, error) { return oauth.New(o, scope) }
