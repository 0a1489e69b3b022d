package payload

import (
	"strings"

	"github.com/emersion/go-message/textproto"

	"github.com/figurative/figsupport/internal/text"
)

// automatic says why the message was written by a machine ("" when nothing says so) and, for a
// report that a message could not be delivered, which message bounced. Only the message's own
// header and structure count: a person forwarding an out-of-office reply or a bounce is a person.
// from is the bare From address.
//
// The signs, in the order they are named:
//   - a delivery report: multipart/report with a delivery-status or disposition-notification
//     part (RFC 6522, 3464, 8098), X-Failed-Recipients (Exim), a mailer-daemon or postmaster sender;
//   - Auto-Submitted other than "no" (RFC 3834), X-Autoreply, X-Autorespond;
//   - Precedence (or X-Precedence) bulk, junk, list or auto_reply;
//   - an Exchange automatic reply: X-Auto-Response-Suppress "All" with X-MS-Exchange-Inbox-Rules-Loop
//     (either alone is also on mail people write or that rules forward);
//   - an empty envelope sender (Return-Path: <>), what RFC 3834 and 3464 ask automatic mail to use;
//   - bulk mail with one-click unsubscription (List-Unsubscribe-Post, RFC 8058);
//   - list mail (List-Id, List-Unsubscribe) without a human sender: see listFromPerson.
func (p *emlParser) automatic(h textproto.Header, from string) (reason, bounceOf string) {
	local := from
	if at := strings.LastIndexByte(from, '@'); at >= 0 {
		local = from[:at]
	}
	switch {
	case p.report.kind == "delivery-status":
		// A delay or success notice is a report too, but nothing bounced.
		if p.report.failed || p.report.actions == 0 {
			return "delivery status notification", p.report.originalID
		}
		return "delivery status notification (delivery delayed or relayed)", ""
	case p.report.kind == "disposition-notification":
		return "disposition notification (read receipt)", ""
	case h.Has("X-Failed-Recipients"):
		return "delivery failure report (X-Failed-Recipients)", p.returnedID()
	case local == "mailer-daemon" || local == "postmaster":
		return "sender is " + local, p.returnedID()
	}
	if v := headerToken(h.Get("Auto-Submitted")); v != "" && v != "no" {
		return "Auto-Submitted: " + v, ""
	}
	for _, k := range []string{"X-Autoreply", "X-Autorespond"} {
		if h.Has(k) {
			switch v := headerToken(h.Get(k)); v {
			case "no", "false", "0":
			default:
				return k + " header", ""
			}
		}
	}
	for _, k := range []string{"Precedence", "X-Precedence"} {
		switch v := headerToken(h.Get(k)); v {
		case "bulk", "junk", "list", "auto_reply":
			return k + ": " + v, ""
		}
	}
	if strings.Contains(strings.ToLower(h.Get("X-Auto-Response-Suppress")), "all") && h.Has("X-MS-Exchange-Inbox-Rules-Loop") {
		return "Exchange automatic reply (X-MS-Exchange-Inbox-Rules-Loop)", ""
	}
	if rp := strings.Join(strings.Fields(h.Get("Return-Path")), ""); rp == "<>" {
		return "empty return path (Return-Path: <>)", ""
	}
	if h.Has("List-Unsubscribe-Post") {
		return "bulk mail (List-Unsubscribe-Post)", ""
	}
	for _, k := range []string{"List-Id", "List-Unsubscribe"} {
		if h.Has(k) && !listFromPerson(h, from) {
			return k + " without a human sender", ""
		}
	}
	return "", ""
}

// returnedID is the message a bounce that is not a structured report returns: the one it holds
// as a message/rfc822 part, when it does.
func (p *emlParser) returnedID() string {
	if p.report.originalID != "" {
		return p.report.originalID
	}
	return p.forwardedID
}

// headerToken is a header value's first word, lower-cased: "auto-replied" of
// "Auto-Replied; owner-email=…" or of "auto-replied (vacation)".
func headerToken(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	if i := strings.IndexAny(v, "; \t("); i >= 0 {
		v = v[:i]
	}
	return text.Truncate(text.OneLine(fixUTF8(v)), 40)
}

// listFromPerson says whether a message that came through a list (List-Id or List-Unsubscribe)
// was written by a person the list relays, as a discussion list or a team's group address does,
// rather than by the list itself, as a newsletter is: its From is an address, not the list's own
// (its List-Post address, or the address its List-Id names as local.domain), and not a role
// that no person answers (noreply, newsletter, bounces, list-request…).
func listFromPerson(h textproto.Header, from string) bool {
	at := strings.LastIndexByte(from, '@')
	if at <= 0 {
		return false
	}
	local, domain := from[:at], from[at+1:]
	if robotLocalPart(local) {
		return false
	}
	if post := listPostAddress(h.Get("List-Post")); post != "" && post == from {
		return false
	}
	if id := listID(h.Get("List-Id")); id != "" && id == local+"."+domain {
		return false
	}
	return true
}

// robotLocalPart says whether an address's local part is one no person writes from.
func robotLocalPart(local string) bool {
	local = strings.ToLower(local)
	if i := strings.IndexByte(local, '+'); i >= 0 {
		local = local[:i] // a tagged address: its tag is the sender's business
	}
	norm := strings.NewReplacer("-", "", "_", "", ".", "").Replace(local)
	switch norm {
	case "noreply", "donotreply", "mailerdaemon", "postmaster", "newsletter", "newsletters", "news",
		"notification", "notifications", "notify", "mailer", "bounce", "bounces", "listserv", "majordomo",
		"list", "lists", "unsubscribe":
		return true
	}
	for _, prefix := range []string{"noreply", "donotreply", "bounce", "owner-"} {
		if strings.HasPrefix(norm, prefix) || strings.HasPrefix(local, prefix) {
			return true
		}
	}
	for _, suffix := range []string{"-request", "-owner", "-bounces", "-noreply", "-no-reply"} {
		if strings.HasSuffix(local, suffix) {
			return true
		}
	}
	return false
}

// listPostAddress is the address of a List-Post field ("<mailto:list@example.org>"), lower-cased, or "".
func listPostAddress(v string) string {
	lv := strings.ToLower(v)
	i := strings.Index(lv, "<mailto:")
	if i < 0 {
		return ""
	}
	addr := lv[i+len("<mailto:"):]
	if j := strings.IndexAny(addr, ">?"); j >= 0 {
		addr = addr[:j]
	}
	return strings.TrimSpace(addr)
}

// listID is the identifier of a List-Id field ("Team <team.example.org>" → "team.example.org").
func listID(v string) string {
	v = strings.ToLower(v)
	i := strings.LastIndexByte(v, '<')
	if i < 0 {
		return strings.TrimSpace(v)
	}
	id := v[i+1:]
	if j := strings.IndexByte(id, '>'); j >= 0 {
		id = id[:j]
	}
	return strings.TrimSpace(id)
}
