package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks (https://www.standardwebhooks.com) headers.
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// TimestampTolerance is how far webhook-timestamp may be from now, either way.
const TimestampTolerance = 5 * time.Minute

const maxWebhookIDBytes = 256

// parseSecret decodes "whsec_<base64>" (the prefix is optional). Its errors never quote the secret.
func parseSecret(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "whsec_"))
	if err != nil {
		return nil, errors.New("server: webhook secret: expected whsec_ followed by standard base64")
	}
	if len(b) < 16 {
		return nil, fmt.Errorf("server: webhook secret: %d bytes once decoded, at least 16 needed", len(b))
	}
	return b, nil
}

// SignWebhook returns the webhook-signature header value a Standard Webhooks sender puts on body:
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>". Tests and scripts use it to call the webhook.
func SignWebhook(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := parseSecret(secret)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, ts.Unix())
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// SignRequest sets the three Standard Webhooks headers on r for body (which must be r's body).
func SignRequest(r *http.Request, secret, id string, ts time.Time, body []byte) error {
	sig, err := SignWebhook(secret, id, ts, body)
	if err != nil {
		return err
	}
	r.Header.Set(HeaderWebhookID, id)
	r.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	r.Header.Set(HeaderWebhookSignature, sig)
	return nil
}

// auth is where a request stands with authentication once its headers are read: done, or a
// signature to check once the whole body went through mac.
type auth struct {
	mac  hash.Hash // nil when the request is authenticated already
	sigs [][]byte
	// signedID is the webhook-id a signature covers: the request's only idempotency key besides
	// its body's request_id, since no other header is signed.
	signedID string
}

func (a *auth) pending() bool { return a.mac != nil }

// verify checks the body's MAC against every listed signature in constant time.
func (a *auth) verify() bool {
	if a.mac == nil {
		return true
	}
	sum := a.mac.Sum(nil)
	ok := false
	for _, s := range a.sigs {
		if hmac.Equal(sum, s) {
			ok = true
		}
	}
	return ok
}

// errUnauthorized is the one answer to any authentication failure: it does not say which.
var errUnauthorized = &apiError{Status: http.StatusUnauthorized, Msg: "unauthorized"}

// authenticate checks what can be checked from the headers. A valid bearer token (when one is
// configured) settles it; else, when a webhook secret is configured, well-formed and fresh
// signature headers make the request pending its body's MAC. reason (for the log) says why not.
func (s *Server) authenticate(r *http.Request) (a *auth, reason string) {
	if s.secret == nil && s.cfg.BearerToken == "" {
		return &auth{}, ""
	}
	if s.cfg.BearerToken != "" {
		if tok, ok := bearer(r.Header.Get("Authorization")); ok {
			// Hashing both sides first makes the comparison constant-time in the length too.
			got, want := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(s.cfg.BearerToken))
			if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
				return &auth{}, ""
			}
			reason = "bad bearer token"
		} else {
			reason = "no bearer token"
		}
		if s.secret == nil {
			return nil, reason
		}
	}
	id := r.Header.Get(HeaderWebhookID)
	tsText := r.Header.Get(HeaderWebhookTimestamp)
	sigText := r.Header.Get(HeaderWebhookSignature)
	if id == "" || tsText == "" || sigText == "" {
		return nil, join(reason, "missing webhook signature headers")
	}
	if len(id) > maxWebhookIDBytes {
		return nil, join(reason, "webhook-id too long")
	}
	ts, err := strconv.ParseInt(strings.TrimSpace(tsText), 10, 64)
	if err != nil {
		return nil, join(reason, "webhook-timestamp not a Unix time")
	}
	if d := s.now().Sub(time.Unix(ts, 0)); d > TimestampTolerance || d < -TimestampTolerance {
		return nil, join(reason, "webhook-timestamp outside the tolerance")
	}
	var sigs [][]byte
	for _, f := range strings.Fields(sigText) {
		v, b64, ok := strings.Cut(f, ",")
		if !ok || v != "v1" {
			continue // other schemes (v1a: asymmetric) are not configured here
		}
		if sig, err := base64.StdEncoding.DecodeString(b64); err == nil {
			sigs = append(sigs, sig)
		}
	}
	if len(sigs) == 0 {
		return nil, join(reason, "no v1 signature")
	}
	mac := hmac.New(sha256.New, s.secret)
	fmt.Fprintf(mac, "%s.%s.", id, strings.TrimSpace(tsText))
	return &auth{mac: mac, sigs: sigs, signedID: id}, ""
}

func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
