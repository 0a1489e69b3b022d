package payload

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/figurative/figsupport/internal/text"
)

var emlNow = time.Date(2026, 1, 12, 12, 0, 0, 0, time.UTC)

const emlMaxFile = 1 << 20

func readEML(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "eml", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// spoolFiles lists the regular files under dir (relative paths), and fails on anything that is
// not a directory or a regular file.
func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

func inside(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..") && !filepath.IsAbs(rel)
}

func TestParseEmail(t *testing.T) {
	tests := []struct {
		name  string
		file  string // in testdata/eml
		raw   string // or the message itself
		check func(t *testing.T, r *Request, spool string)
	}{
		{
			name: "plain text",
			file: "plain.eml",
			check: func(t *testing.T, r *Request, _ string) {
				want := Request{Source: "email", Objet: "Re: Paiement refusé",
					Description: "Bonjour,\n\nMon paiement par carte est refusé depuis hier.\n\nMerci,\nJean",
					UserEmail:   "client@example.com", UserName: "Jean Dupont",
					ReceivedAt: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC), RequestID: "CAF1234.abcd@mail.example.com",
					Mail: &Mail{MessageID: "CAF1234.abcd@mail.example.com", From: "client@example.com", To: []string{"support@figurative.fr"}}}
				if !equalRequest(*r, want) {
					t.Errorf("got  %+v %+v\nwant %+v %+v", *r, *r.Mail, want, *want.Mail)
				}
			},
		},
		{
			name: "quoted-printable ISO-8859-1 with encoded subject and name",
			file: "latin1_qp.eml",
			check: func(t *testing.T, r *Request, _ string) {
				if r.Objet != "Problème de paiement à l'inscription" {
					t.Errorf("objet %q", r.Objet)
				}
				if r.UserName != "Renée Lévy" || r.UserEmail != "renee.levy@example.fr" {
					t.Errorf("sender %q <%s>", r.UserName, r.UserEmail)
				}
				want := "Bonjour,\n\nJe n'arrive pas à payer ma facture : le bouton « Payer » ne répond pas.\nPouvez-vous vérifier ? Coût : 49,90 €.\n\nRenée"
				if r.Description != want {
					t.Errorf("description\n got %q\nwant %q", r.Description, want)
				}
				if r.RequestID != "20260106083000.1@example.fr" {
					t.Errorf("request_id %q", r.RequestID)
				}
			},
		},
		{
			name: "multipart/alternative: the plain text, unflowed",
			file: "alternative.eml",
			check: func(t *testing.T, r *Request, _ string) {
				want := "Je ne peux plus me connecter à mon compte depuis la mise à jour, le mot de passe est refusé."
				if r.Description != want {
					t.Errorf("description %q", r.Description)
				}
				if len(r.Fichiers) != 0 {
					t.Errorf("files %+v", r.Fichiers)
				}
			},
		},
		{
			name: "HTML only: tags, scripts and styles removed, entities decoded",
			file: "html_only.eml",
			check: func(t *testing.T, r *Request, _ string) {
				want := "Bonjour l'équipe,\n\nNous voudrions modéliser nos chaises & tables <en chêne> – voir ce lien <https://we.tl/t-abc>.\n\n- Chaise A\n- Chaise B\n\nCordialement,\nL’équipe"
				if r.Description != want {
					t.Errorf("description\n got %q\nwant %q", r.Description, want)
				}
			},
		},
		{
			name: "multipart/mixed: a .glb and a photo with an RFC 2231 name",
			file: "mixed_attachments.eml",
			check: func(t *testing.T, r *Request, spool string) {
				if r.Description != "Voici le modèle et une photo." {
					t.Errorf("description %q", r.Description)
				}
				if len(r.Fichiers) != 2 {
					t.Fatalf("files %+v", r.Fichiers)
				}
				for i, w := range []struct{ name, base, content string }{
					{"chaise.glb", "1-chaise.glb", "glb.bin"},
					{"vue de face.jpg", "2-vue_de_face.jpg", "jpg.bin"},
				} {
					f := r.Fichiers[i]
					if f.Name != w.name || filepath.Base(f.Path) != w.base || f.URL != "" {
						t.Errorf("file %d = %+v, want name %q base %q", i, f, w.name, w.base)
					}
					got, err := os.ReadFile(f.Path)
					if err != nil || !bytes.Equal(got, readEML(t, w.content)) {
						t.Errorf("file %d content differs from %s (%v)", i, w.content, err)
					}
					st, err := os.Stat(f.Path)
					if err != nil || st.Mode().Perm() != 0o600 {
						t.Errorf("file %d mode %v (%v)", i, st.Mode(), err)
					}
					dst, err := os.Stat(filepath.Dir(f.Path))
					if err != nil || dst.Mode().Perm() != 0o700 {
						t.Errorf("dir mode %v (%v)", dst.Mode(), err)
					}
				}
				dir := filepath.Base(filepath.Dir(r.Fichiers[0].Path))
				if !strings.HasPrefix(dir, "mixed-1_atelier-bois.fr-") {
					t.Errorf("spool dir %q is not named after the request key", dir)
				}
			},
		},
		{
			name: "forwarded message/rfc822: its text and attachment",
			file: "forwarded.eml",
			check: func(t *testing.T, r *Request, _ string) {
				want := "Peux-tu créer le ticket ?\n\n---------- Message transféré ----------\nDe : Clément <clement@client.fr>\n" +
					"Date : Sat, 10 Jan 2026 08:00:00 +0100\nObjet : Photos du canapé\nÀ : commercial@figurative.fr\n\nCi-joint le devis signé."
				if r.Description != want {
					t.Errorf("description\n got %q\nwant %q", r.Description, want)
				}
				if r.UserEmail != "commercial@figurative.fr" || r.RequestID != "fwd-1@figurative.fr" {
					t.Errorf("sender %s, id %s: the outer message's", r.UserEmail, r.RequestID)
				}
				if len(r.Fichiers) != 1 || r.Fichiers[0].Name != "devis signé.pdf" || filepath.Base(r.Fichiers[0].Path) != "1-devis_signé.pdf" {
					t.Fatalf("files %+v", r.Fichiers)
				}
				if got, _ := os.ReadFile(r.Fichiers[0].Path); !bytes.Equal(got, readEML(t, "pdf.bin")) {
					t.Errorf("pdf content differs")
				}
			},
		},
		{
			name: "Reply-To over From; no Date is now, by default",
			file: "reply_to_no_date.eml",
			check: func(t *testing.T, r *Request, _ string) {
				if r.UserEmail != "marie.dupont@example.org" || r.UserName != "Dupont, Marie" {
					t.Errorf("sender %q <%s>", r.UserName, r.UserEmail)
				}
				if !r.ReceivedAt.Equal(emlNow) || !r.ReceivedAtDefault {
					t.Errorf("received_at %v default %v", r.ReceivedAt, r.ReceivedAtDefault)
				}
				if r.RequestID != "" || !strings.HasPrefix(r.Key(), "h-") {
					t.Errorf("no Message-Id: key %q", r.Key())
				}
			},
		},
		{
			name: "path traversal in file names stays in the spool",
			file: "traversal.eml",
			check: func(t *testing.T, r *Request, spool string) {
				if len(r.Fichiers) != 3 {
					t.Fatalf("files %+v", r.Fichiers)
				}
				for i, w := range []struct{ name, base string }{
					{"passwd", "1-passwd"}, {".bashrc", "2-bashrc"}, {"attachment-3.png", "3-attachment-3.png"},
				} {
					f := r.Fichiers[i]
					if f.Name != w.name || filepath.Base(f.Path) != w.base {
						t.Errorf("file %d = %+v, want %q / %q", i, f, w.name, w.base)
					}
					if !inside(spool, f.Path) || filepath.Dir(filepath.Dir(f.Path)) != spool {
						t.Errorf("file %d at %s, outside a request directory of %s", i, f.Path, spool)
					}
				}
				if got, _ := os.ReadFile(r.Fichiers[0].Path); string(got) != "root:x:0:0" {
					t.Errorf("content %q", got)
				}
				if d := filepath.Base(filepath.Dir(r.Fichiers[0].Path)); !strings.HasPrefix(d, "h-") {
					t.Errorf("hash-keyed spool dir %q", d)
				}
			},
		},
		{
			name: "windows-1252 encoded words, folded subject, mbox From line",
			raw: "From someone@example.com Mon Jan  5 10:00:00 2026\n" +
				"From: =?windows-1252?q?Fran=E7ois_=93Fanfan=94?= <f@example.com>\n" +
				"Subject: =?windows-1252?q?L=92=E9t=E9?=\n =?utf-8?b?IOKCrA==?=\n\tsuite\n" +
				"Date: not a date\n" +
				"Message-ID: <" + strings.Repeat("x", 300) + "@example.com>\n\nCorps.\n",
			check: func(t *testing.T, r *Request, _ string) {
				if r.UserName != "François “Fanfan”" {
					t.Errorf("name %q", r.UserName)
				}
				if r.Objet != "L’été € suite" {
					t.Errorf("objet %q", r.Objet)
				}
				if !r.ReceivedAtDefault {
					t.Error("an unparsable Date is now")
				}
				if !strings.HasPrefix(r.RequestID, "eml-") || len(r.RequestID) > DefaultLimits.MaxRequestIDBytes {
					t.Errorf("long Message-Id: %q", r.RequestID)
				}
				if again := messageIDKey("<"+strings.Repeat("x", 300)+"@example.com>", 200); again != r.RequestID {
					t.Errorf("hashed id not stable: %q", again)
				}
			},
		},
		{
			name: "unknown charset, subject only, bare LF and 8-bit Latin-1 header",
			raw:  "From: a@example.com\nSubject: Caf\xe9\nContent-Type: text/plain; charset=x-nonsense\n\nok \xff\n",
			check: func(t *testing.T, r *Request, _ string) {
				if r.Objet != "Café" || r.Description != "ok \uFFFD" {
					t.Errorf("objet %q description %q", r.Objet, r.Description)
				}
			},
		},
		{
			name: "inline text with a file name is an attachment; related images too; signatures dropped",
			raw: "From: a@example.com\nSubject: s\nContent-Type: multipart/signed; boundary=s\n\n--s\n" +
				"Content-Type: multipart/related; boundary=r\n\n--r\nContent-Type: text/html; charset=utf-8\n\n<p>Voir <img src=cid:p1></p>\n" +
				"--r\nContent-Type: image/jpeg\nContent-ID: <p1>\nContent-Transfer-Encoding: base64\n\n/9j/4A==\n--r--\n" +
				"--s\nContent-Type: text/plain; name=notes.txt\nContent-Disposition: inline\n\nmes notes\n" +
				"--s\nContent-Type: application/pkcs7-signature; name=smime.p7s\n\nMIIsig\n--s--\n",
			check: func(t *testing.T, r *Request, _ string) {
				if r.Description != "Voir" {
					t.Errorf("description %q", r.Description)
				}
				if len(r.Fichiers) != 2 || r.Fichiers[0].Name != "attachment-1.jpg" || r.Fichiers[1].Name != "notes.txt" {
					t.Fatalf("files %+v", r.Fichiers)
				}
				if b, _ := os.ReadFile(r.Fichiers[0].Path); string(b) != "\xff\xd8\xff\xe0" {
					t.Errorf("image %q", b)
				}
			},
		},
		{
			name: "a forwarded part that is no message is kept whole; an empty one is nothing",
			raw: "From: a@example.com\nSubject: s\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nVoir.\n" +
				"--b\nContent-Type: message/rfc822; name=notes.eml\n\n{not a header}\nligne 2\n" +
				"--b\nContent-Type: message/rfc822\n\n--b--\n",
			check: func(t *testing.T, r *Request, _ string) {
				if r.Description != "Voir." || len(r.Fichiers) != 1 || r.Fichiers[0].Name != "notes.eml" {
					t.Fatalf("%+v", r)
				}
				if b, _ := os.ReadFile(r.Fichiers[0].Path); string(b) != "{not a header}\nligne 2" {
					t.Errorf("kept %q", b)
				}
			},
		},
		{
			name: "subject alone is enough; a body-less message",
			raw:  "From: a@example.com\nSubject: Rappel\n",
			check: func(t *testing.T, r *Request, _ string) {
				if r.Objet != "Rappel" || r.Description != "" {
					t.Errorf("%+v", r)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spool := t.TempDir()
			in := []byte(tt.raw)
			if tt.file != "" {
				in = readEML(t, tt.file)
			}
			r, err := ParseEmail(bytes.NewReader(in), DefaultLimits, emlNow, spool, emlMaxFile)
			if err != nil {
				t.Fatalf("ParseEmail: %v", err)
			}
			if r.Source != "email" {
				t.Errorf("source %q", r.Source)
			}
			// The request is valid as it is, and stays the same once normalised again.
			c := *r
			if err := c.Normalize(DefaultLimits, emlNow); err != nil || c.Hash() != r.Hash() {
				t.Errorf("re-normalised: %v, hash changed %v", err, c.Hash() != r.Hash())
			}
			tt.check(t, r, spool)
			// Nothing is left in the private directory; only the request's files are there.
			if n := len(spoolFiles(t, spool)); n != len(r.Fichiers) {
				t.Errorf("%d files in the spool, %d in the request", n, len(r.Fichiers))
			}
			// The same message read again gives the same request, on the same paths.
			r2, err := ParseEmail(bytes.NewReader(in), DefaultLimits, emlNow, spool, emlMaxFile)
			if err != nil || r2.Key() != r.Key() || r2.Hash() != r.Hash() {
				t.Errorf("read again: %v, key %s vs %s", err, r2.Key(), r.Key())
			}
		})
	}
}

func TestParseEmailInvalid(t *testing.T) {
	small := DefaultLimits
	small.MaxFiles = 2
	tests := []struct {
		name    string
		file    string
		raw     string
		lim     Limits
		maxFile int64
		field   string
		msg     string // in the error
		large   bool   // errors.Is(err, ErrTooLarge)
	}{
		{name: "not an e-mail: JSON", file: "not_email.json", msg: "not an e-mail"},
		{name: "not an e-mail: binary", raw: "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", msg: "not an e-mail"},
		{name: "not an e-mail: empty", raw: "", msg: "empty"},
		{name: "not an e-mail: no header", raw: "\nhello\n", msg: "no header"},
		{name: "missing From", raw: "To: support@figurative.fr\nSubject: x\n\nbody\n", field: "user_email", msg: "required"},
		{name: "From not an address", raw: "From: Jean Dupont\nSubject: x\n\nbody\n", field: "user_email", msg: "not a valid"},
		{name: "empty subject and body", raw: "From: a@example.com\nSubject:  \n\n \n", field: "description"},
		{name: "HTML with no text", raw: "From: a@example.com\nContent-Type: text/html\n\n<html><style>x</style></html>\n", field: "description"},
		{name: "too many attachments", file: "three_attachments.eml", lim: small, field: "fichiers", msg: "more than 2"},
		{name: "oversize attachment", file: "mixed_attachments.eml", maxFile: 300, field: "fichiers[0]", msg: `"chaise.glb" exceeds 300 bytes`, large: true},
		{name: "oversize second attachment", file: "mixed_attachments.eml", maxFile: 400, field: "fichiers[1]", msg: `"vue de face.jpg" exceeds`, large: true},
		{name: "message over its budget", raw: "From: a@example.com\n\n" + strings.Repeat("x", 3<<20), lim: Limits{MaxBodyBytes: 1024, MaxFiles: 0, MaxObjetChars: 10, MaxDescriptionChar: 10, MaxNameChars: 10, MaxFileNameBytes: 10, MaxRequestIDBytes: 10}, msg: "too large", large: true},
		{name: "header section too large", raw: "From: a@example.com\nX-Big: " + strings.Repeat("y", 2<<20) + "\n\nbody", msg: "header section exceeds"},
		{name: "truncated attachment", raw: "From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\ntext\n--b\nContent-Disposition: attachment; filename=x.bin\n\nabc", field: "fichiers[0]", msg: "truncated"},
		{name: "part header too large", raw: "From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n--b\nX-Big: " + strings.Repeat("y", 2<<20) + "\n\nx\n--b--\n", msg: "a part's header section exceeds"},
		{name: "forwarded header too large", raw: "From: a@example.com\nContent-Type: message/rfc822\n\nX-Big: " + strings.Repeat("y", 2<<20) + "\n\nx\n", msg: "header section exceeds"},
		{name: "broken multipart", raw: "From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b\n\ny\n\n--b--garbage\nmore\n--b\nbad header line\n\nz\n", msg: "malformed e-mail"},
		{name: "multipart without boundary", raw: "From: a@example.com\nContent-Type: multipart/mixed\n\nx\n", msg: "no boundary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spool := t.TempDir()
			lim := tt.lim
			if lim == (Limits{}) {
				lim = DefaultLimits
			}
			maxFile := tt.maxFile
			if maxFile == 0 {
				maxFile = emlMaxFile
			}
			in := []byte(tt.raw)
			if tt.file != "" {
				in = readEML(t, tt.file)
			}
			r, err := ParseEmail(bytes.NewReader(in), lim, emlNow, spool, maxFile)
			if err == nil {
				t.Fatalf("no error; got %+v", r)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %T %v, want a ValidationError", err, err)
			}
			if ve.Field != tt.field || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q (field %q), want field %q containing %q", err, ve.Field, tt.field, tt.msg)
			}
			if errors.Is(err, ErrTooLarge) != tt.large {
				t.Errorf("errors.Is(ErrTooLarge) = %v", !tt.large)
			}
			if r != nil {
				t.Errorf("a request with the error: %+v", r)
			}
			if entries, _ := os.ReadDir(spool); len(entries) != 0 {
				t.Errorf("the spool is not clean: %v", spoolFiles(t, spool))
			}
		})
	}
}

func TestParseEmailLongTextIsCut(t *testing.T) {
	lim := DefaultLimits
	lim.MaxDescriptionChar = 100
	lim.MaxObjetChars = 20
	lim.MaxNameChars = 5
	raw := "From: =?utf-8?q?Jean-Fran=C3=A7ois_Dupont?= <jf@example.com>\nSubject: " + strings.Repeat("sujet ", 20) +
		"\n\n" + strings.Repeat("é", 500) + "\n"
	r, err := ParseEmail(strings.NewReader(raw), lim, emlNow, t.TempDir(), emlMaxFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := utf8.RuneCountInString(r.Description); n > 100 || !strings.HasSuffix(r.Description, "[… message tronqué]") {
		t.Errorf("description (%d chars) %q", n, r.Description)
	}
	if utf8.RuneCountInString(r.Objet) > 20 || utf8.RuneCountInString(r.UserName) > 5 {
		t.Errorf("objet %q name %q", r.Objet, r.UserName)
	}

	// Past the text budget (MaxBodyBytes of decoded text), the rest is left out, and said so.
	lim = DefaultLimits
	lim.MaxBodyBytes = 64
	r, err = ParseEmail(strings.NewReader("From: a@example.com\n\n"+strings.Repeat("a", 200)), lim, emlNow, t.TempDir(), emlMaxFile)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Repeat("a", 64) + truncatedMark; r.Description != want {
		t.Errorf("description %q", r.Description)
	}
}

func TestParseEmailDeepForward(t *testing.T) {
	// Seven forwarded messages inside one another: five are opened, the rest is one .eml file.
	msg := "From: in@example.com\nSubject: fond\nContent-Type: multipart/mixed; boundary=z\n\n--z\nContent-Disposition: attachment; filename=deep.txt\n\nau fond\n--z--\n"
	for i := 0; i < 7; i++ {
		b := fmt.Sprintf("b%d", i)
		msg = fmt.Sprintf("From: l%d@example.com\nSubject: niveau %d\nContent-Type: multipart/mixed; boundary=%s\n\n--%s\n\nniveau %d\n--%s\nContent-Type: message/rfc822\n\n%s\n--%s--\n", i, i, b, b, i, b, msg, b)
	}
	spool := t.TempDir()
	r, err := ParseEmail(strings.NewReader(msg), DefaultLimits, emlNow, spool, emlMaxFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(r.Description, "Message transféré"); got != MaxEmailForwardDepth {
		t.Errorf("%d forwarded blocks, want %d", got, MaxEmailForwardDepth)
	}
	if len(r.Fichiers) != 1 || r.Fichiers[0].Name != "attachment-1.eml" {
		t.Fatalf("files %+v", r.Fichiers)
	}
	if b, _ := os.ReadFile(r.Fichiers[0].Path); !bytes.Contains(b, []byte("au fond")) {
		t.Errorf("the deep message is not kept whole: %q", b)
	}
}

func TestSanitizeFileName(t *testing.T) {
	for in, want := range map[string]string{
		"photo.jpg":                         "photo.jpg",
		"../../etc/passwd":                  "passwd",
		"..\\..\\x.txt":                     "x.txt",
		".htaccess":                         "htaccess",
		"a\x00b\x1fc\u202e.exe":             "abc.exe",
		"vue de face.jpg":                   "vue_de_face.jpg",
		`a:b*c?"<>|.png`:                    "a_b_c_.png",
		"":                                  "file",
		"...":                               "file",
		strings.Repeat("é", 100) + ".glb":   strings.Repeat("é", 48) + ".glb",
		"-rf":                               "rf",
		"caf\xe9.txt":                       "caf_.txt",
		strings.Repeat("x", 200) + ".jpeg2": strings.Repeat("x", 94) + ".jpeg2",
	} {
		got := text.FileName(in, 100)
		if got != want {
			t.Errorf("text.FileName(%q) = %q, want %q", in, got, want)
		}
		if len(got) > 100 || !utf8.ValidString(got) || strings.ContainsAny(got, `/\`) || strings.HasPrefix(got, ".") {
			t.Errorf("text.FileName(%q) = %q is not safe", in, got)
		}
	}
}

func TestHTMLToText(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"<p>a</p><p>b</p>", "a\n\nb"},
		{"a<br/>b<BR>c", "a\nb\nc"},
		{"x < y &amp;&amp; y > z", "x < y && y > z"},
		{"<pre>  keep\n   this</pre>", "keep\n   this"},
		{"<script>var s = '</p>';</script>ok", "ok"},
		{"<a href='mailto:a@b.c'>écrire</a>", "écrire"},
		{"<a href=\"https://x.example/\">https://x.example/</a>", "https://x.example/"},
		{"<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"},
		{"<img src=x alt='y'>texte<unterminated", "texte"},
		{"<!-- never closed", ""},
		{"&lt;script&gt;", "<script>"},
	} {
		if got := cleanText(htmlToText(tt.in)); got != tt.want {
			t.Errorf("htmlToText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseEmail(f *testing.F) {
	// Seeds: this package's messages, the repository's corpus and its example e-mail.
	var seeds []string
	for _, pattern := range []string{filepath.Join("testdata", "eml", "*.eml"), filepath.Join(mailCorpus, "*.eml"), filepath.Join("..", "..", "testdata", "emails", "*.eml")} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, m...)
	}
	if len(seeds) < 20 {
		f.Fatalf("only %d seed files", len(seeds))
	}
	for _, name := range seeds {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("From: a@example.com\nContent-Type: multipart/alternative; boundary=q\n\n--q\nContent-Type: text/html\n\n<p>x</p>\n--q--\n"))
	f.Add([]byte("From: a@example.com\nContent-Type: message/rfc822\n\nFrom: b@example.com\n\nhi\n"))
	f.Add([]byte("Content-TYpe:multipArt/;BoundArY=outer\n\n--outer\nContent-TYpe:messAge/rfC822\n\n"))
	lim := DefaultLimits
	lim.MaxFiles = 4
	f.Fuzz(func(t *testing.T, data []byte) {
		spool := t.TempDir()
		r, err := ParseEmail(bytes.NewReader(data), lim, emlNow, spool, 4096)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("not a validation error: %v", err)
			}
			if entries, _ := os.ReadDir(spool); len(entries) != 0 {
				t.Fatalf("spool left with %v after %v", spoolFiles(t, spool), err)
			}
			return
		}
		c := *r
		if err := c.Normalize(lim, emlNow); err != nil {
			t.Fatalf("the request does not re-validate: %v\n%+v", err, r)
		}
		m := r.Mail
		if m == nil {
			t.Fatal("no Mail")
		}
		for _, s := range append(append(append([]string{m.MessageID, m.From, m.Automatic, m.BounceOf}, m.InReplyTo...), m.References...), append(m.To, m.Cc...)...) {
			if !utf8.ValidString(s) || strings.ContainsAny(s, "\r\n\x00") || len(s) > maxMessageIDBytes {
				t.Fatalf("Mail field %q", s)
			}
		}
		if len(m.InReplyTo) > maxInReplyTo || len(m.References) > maxReferences || len(m.To) > maxRecipients || len(m.Cc) > maxRecipients {
			t.Fatalf("Mail lists unbounded: %+v", m)
		}
		for _, f := range r.Fichiers {
			if !inside(spool, f.Path) {
				t.Fatalf("file %q outside the spool %s", f.Path, spool)
			}
			if st, err := os.Stat(f.Path); err != nil || st.Size() > 4096 {
				t.Fatalf("file %q: %v", f.Path, err)
			}
		}
		if n := len(spoolFiles(t, spool)); n != len(r.Fichiers) {
			t.Fatalf("%d files in the spool for %d attachments", n, len(r.Fichiers))
		}
	})
}
