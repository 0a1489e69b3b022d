package payload

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// mailMsg is a message with the given header lines before its own From, To, Subject and
// Message-ID (a header line given that names one of those replaces it), and the given body.
func mailMsg(header, body string) string {
	var b strings.Builder
	b.WriteString(header)
	for _, f := range []string{"From: Ana <ana@client.example>", "To: support@figurative.example", "Subject: Bonjour", "Message-ID: <m1@client.example>"} {
		key := f[:strings.IndexByte(f, ':')+1]
		if !strings.Contains("\n"+strings.ToLower(header), "\n"+strings.ToLower(key)) {
			b.WriteString(f + "\n")
		}
	}
	if !strings.Contains(strings.ToLower(header), "content-type:") {
		b.WriteString("\nBonjour.\n")
		return b.String()
	}
	return b.String() + "\n" + body
}

func TestParseEmailMail(t *testing.T) {
	const ana, m1 = "ana@client.example", "m1@client.example"
	to := []string{"support@figurative.example"}
	// dsn is a delivery report about <orig@figurative.example> whose recipient had action.
	dsn := func(action string) string {
		return mailMsg("From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\nContent-Type: multipart/report; report-type=delivery-status; boundary=r\n",
			"--r\n\nNon distribué.\n--r\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; x@client.example\nAction: "+action+"\nStatus: 4.4.1\n"+
				"--r\nContent-Type: message/rfc822\n\nFrom: support@figurative.example\nMessage-ID: <orig@figurative.example>\nSubject: s\n\ntexte\n--r--\n")
	}
	manyRefs := make([]string, 60)
	for i := range manyRefs {
		manyRefs[i] = fmt.Sprintf("<r%d@x.example>", i)
	}
	manyRcpts := make([]string, 60)
	for i := range manyRcpts {
		manyRcpts[i] = fmt.Sprintf("p%d@client.example", i)
	}
	long := strings.Repeat("x", 300) + "@client.example"
	tests := []struct {
		name string
		raw  string
		want Mail
	}{
		{"a person", mailMsg("", ""), Mail{MessageID: m1, From: ana, To: to}},
		{"ids, comments, duplicates, no brackets",
			mailMsg("Message-ID: m2@client.example\nIn-Reply-To: <a@x.example> (from Ana)\nReferences: <root@x.example> (comment <not@id.example>)\n <a@x.example>\n\t<root@x.example>\n", ""),
			Mail{MessageID: "m2@client.example", InReplyTo: []string{"a@x.example"}, References: []string{"root@x.example", "a@x.example"}, From: ana, To: to}},
		{"In-Reply-To of an old mailer", mailMsg("In-Reply-To: a@x.example's message of Monday\n", ""),
			Mail{MessageID: m1, InReplyTo: []string{"a@x.example's"}, From: ana, To: to}},
		{"References trimmed to the root and the newest", mailMsg("References: "+strings.Join(manyRefs, "\n ")+"\n", ""),
			Mail{MessageID: m1, References: append([]string{"r0@x.example"}, func() []string {
				var out []string
				for i := 11; i < 60; i++ {
					out = append(out, fmt.Sprintf("r%d@x.example", i))
				}
				return out
			}()...), From: ana, To: to}},
		{"a long id is its hash", mailMsg("Message-ID: <"+long+">\nIn-Reply-To: <"+long+">\n", ""),
			Mail{MessageID: messageIDKey(long, maxMessageIDBytes), InReplyTo: []string{messageIDKey(long, maxMessageIDBytes)}, From: ana, To: to}},
		{"addresses: bad ones skipped, duplicates once, groups read",
			mailMsg("To: \"Support, Figurative\" <Support@Figurative.example>, not an address, support@figurative.example, undisclosed-recipients:;\nCc: Bob <bob@client.example>\nCc: bob@client.example, <carl@client.example>\n", ""),
			Mail{MessageID: m1, From: ana, To: to, Cc: []string{"bob@client.example", "carl@client.example"}}},
		{"recipients bounded", mailMsg("Cc: "+strings.Join(manyRcpts, ", ")+"\n", ""),
			Mail{MessageID: m1, From: ana, To: to, Cc: manyRcpts[:maxRecipients]}},
		{"From kept, Reply-To is the customer's", mailMsg("Reply-To: other@client.example\n", ""), Mail{MessageID: m1, From: ana, To: to}},

		{"Auto-Submitted: no", mailMsg("Auto-Submitted: no\n", ""), Mail{MessageID: m1, From: ana, To: to}},
		{"Auto-Submitted with parameters", mailMsg("Auto-Submitted: Auto-Replied; owner-email=\"ana@client.example\"\n", ""),
			Mail{MessageID: m1, From: ana, To: to, Automatic: "Auto-Submitted: auto-replied"}},
		{"X-Autorespond", mailMsg("X-Autorespond: Merci\n", ""), Mail{MessageID: m1, From: ana, To: to, Automatic: "X-Autorespond header"}},
		{"X-Autoreply: no", mailMsg("X-Autoreply: no\n", ""), Mail{MessageID: m1, From: ana, To: to}},
		{"X-Precedence: junk", mailMsg("X-Precedence: junk\n", ""), Mail{MessageID: m1, From: ana, To: to, Automatic: "X-Precedence: junk"}},
		{"Precedence: first-class", mailMsg("Precedence: first-class\n", ""), Mail{MessageID: m1, From: ana, To: to}},
		// Exchange and Outlook put X-Auto-Response-Suppress on mail people write: alone, it says nothing.
		{"X-Auto-Response-Suppress alone", mailMsg("X-Auto-Response-Suppress: All\n", ""), Mail{MessageID: m1, From: ana, To: to}},
		// An inbox rule forwarding a person's message stamps the loop header.
		{"X-MS-Exchange-Inbox-Rules-Loop alone", mailMsg("X-MS-Exchange-Inbox-Rules-Loop: ana@client.example\n", ""), Mail{MessageID: m1, From: ana, To: to}},
		{"Exchange automatic reply without Auto-Submitted", mailMsg("X-Auto-Response-Suppress: All\nX-MS-Exchange-Inbox-Rules-Loop: ana@client.example\n", ""),
			Mail{MessageID: m1, From: ana, To: to, Automatic: "Exchange automatic reply (X-MS-Exchange-Inbox-Rules-Loop)"}},
		{"empty return path", mailMsg("Return-Path: < >\n", ""), Mail{MessageID: m1, From: ana, To: to, Automatic: "empty return path (Return-Path: <>)"}},
		{"one-click unsubscription", mailMsg("List-Unsubscribe: <https://x.example/u>\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\n", ""),
			Mail{MessageID: m1, From: ana, To: to, Automatic: "bulk mail (List-Unsubscribe-Post)"}},
		{"list relaying a person", mailMsg("List-Id: Team <team.client.example>\nList-Post: <mailto:team@client.example>\n", ""), Mail{MessageID: m1, From: ana, To: to}},
		{"list writing as its posting address", mailMsg("From: Team <team@client.example>\nList-Id: <team.client.example>\nList-Post: <mailto:Team@client.example?subject=x>\n", ""),
			Mail{MessageID: m1, From: "team@client.example", To: to, Automatic: "List-Id without a human sender"}},
		{"newsletter named by its List-Id", mailMsg("From: infos@shop.example\nList-Id: <infos.shop.example>\n", ""),
			Mail{MessageID: m1, From: "infos@shop.example", To: to, Automatic: "List-Id without a human sender"}},
		{"list mail from a role address", mailMsg("From: no-reply@shop.example\nList-Unsubscribe: <mailto:u@shop.example>\n", ""),
			Mail{MessageID: m1, From: "no-reply@shop.example", To: to, Automatic: "List-Unsubscribe without a human sender"}},
		// A web form sends from noreply@ on the customer's behalf (Reply-To): without list headers, a person.
		{"form from noreply", mailMsg("From: noreply@forms.example\nReply-To: ana@client.example\n", ""), Mail{MessageID: m1, From: "noreply@forms.example", To: to}},

		{"delivery failure", dsn("failed"), Mail{MessageID: m1, From: "mailer-daemon@mx.example.net", To: to, Automatic: "delivery status notification", BounceOf: "orig@figurative.example"}},
		{"delivery delayed", dsn("delayed"), Mail{MessageID: m1, From: "mailer-daemon@mx.example.net", To: to, Automatic: "delivery status notification (delivery delayed or relayed)"}},
		{"read receipt", mailMsg("Content-Type: multipart/report; report-type=disposition-notification; boundary=r\n",
			"--r\n\nLu.\n--r\nContent-Type: message/disposition-notification\n\nFinal-Recipient: rfc822; ana@client.example\nOriginal-Message-ID: <orig@figurative.example>\nDisposition: manual-action/MDN-sent-manually; displayed\n--r--\n"),
			Mail{MessageID: m1, From: ana, To: to, Automatic: "disposition notification (read receipt)"}},
		{"report inside a mixed message", mailMsg("From: postmaster@client.example\nContent-Type: multipart/mixed; boundary=m\n",
			"--m\nContent-Type: multipart/report; report-type=delivery-status; boundary=r\n\n--r\n\nÉchec.\n--r\nContent-Type: message/delivery-status\n\nAction: failed\n--r\nContent-Type: text/rfc822-headers\n\nMessage-ID: <orig@figurative.example>\n--r--\n--m--\n"),
			Mail{MessageID: m1, From: "postmaster@client.example", To: to, Automatic: "delivery status notification", BounceOf: "orig@figurative.example"}},
		{"old-style bounce quoting the message", mailMsg("From: MAILER-DAEMON@mx.example.net\nContent-Type: multipart/mixed; boundary=m\n",
			"--m\n\nÉchec de remise.\n--m\nContent-Type: message/rfc822\n\nFrom: support@figurative.example\nMessage-ID: <orig@figurative.example>\n\ntexte\n--m--\n"),
			Mail{MessageID: m1, From: "mailer-daemon@mx.example.net", To: to, Automatic: "sender is mailer-daemon", BounceOf: "orig@figurative.example"}},
		{"X-Failed-Recipients", mailMsg("From: Mail Delivery System <Mailer-Daemon@mx.example.net>\nX-Failed-Recipients: x@client.example\n", ""),
			Mail{MessageID: m1, From: "mailer-daemon@mx.example.net", To: to, Automatic: "delivery failure report (X-Failed-Recipients)"}},
		// A person forwarding a bounce or an out-of-office reply asks a question about it.
		{"a person forwards a bounce", mailMsg("Content-Type: multipart/mixed; boundary=m\n",
			"--m\n\nPourquoi ce message ?\n--m\nContent-Type: message/rfc822\n\nFrom: MAILER-DAEMON@mx.example.net\nAuto-Submitted: auto-replied\nMessage-ID: <dsn@mx.example.net>\nContent-Type: multipart/report; report-type=delivery-status; boundary=r\n\n--r\n\nÉchec.\n--r\nContent-Type: message/delivery-status\n\nAction: failed\n--r--\n--m--\n"),
			Mail{MessageID: m1, From: ana, To: to}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseEmail(strings.NewReader(tt.raw), DefaultLimits, emlNow, t.TempDir(), emlMaxFile)
			if err != nil {
				t.Fatalf("ParseEmail: %v", err)
			}
			if !reflect.DeepEqual(*r.Mail, tt.want) {
				t.Errorf("mail\n got %#v\nwant %#v", *r.Mail, tt.want)
			}
		})
	}
}
