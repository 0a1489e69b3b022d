package classify

import (
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/figurative/figsupport/internal/payload"
)

// Weights. A keyword concept counts once however often it appears, at the weight of its strongest
// word, so that a customer repeating "paiement" five times does not outvote one "modélisation".
const (
	weightWeak      = 1 // words with an everyday meaning too: modèle, rendu, compte (verb aside), annuler…
	weightStrong    = 2 // words that name the topic: modélisation, 3D, AR, paiement, facture, bug…
	weightExtInText = 2 // a 3D file name or extension written in the message: "chaise.glb", ".step"
	weightExtFile   = 3 // an attached file with a 3D extension
	weightSource    = 3 // the form the customer used
)

// The decision: the side with the higher score wins clearly when it has at least minWinner points
// and, if the other side scored too, at least twice the other side's score plus clearMargin. Anything
// else (nothing matched, a tie, a close call) is ambiguous.
const (
	minWinner   = 2
	clearMargin = 2
)

// extensions3D are the file extensions of 3D models and scenes (without the dot).
var extensions3D = map[string]bool{
	"glb": true, "gltf": true, "usdz": true, "obj": true, "mtl": true, "fbx": true, "stl": true,
	"blend": true, "3ds": true, "dae": true, "ply": true, "step": true, "stp": true, "3mf": true,
}

// rule is one way of writing a concept. words is a phrase, one pattern per token: alternatives
// separated by "|", a trailing "*" for a stem (prefix), and a leading "-" when the token must be joined
// to the previous one by a hyphen ("3-D"). exclude rejects a match in context (tokens, index of the
// first matched token, number of tokens matched).
type rule struct {
	concept string
	label   string
	weight  int
	kind    string // how the reason calls it: keyword, payment step…
	words   string
	exclude func(toks []token, i, n int) bool

	parts []part
}

type part struct {
	alts   []string
	stems  []string
	hyphen bool
}

const (
	labelM = payload.Modelisation
	labelS = payload.Support
)

// rules are tried in order at every word; the first that matches wins and consumes its words, so the
// specific ones ("3D Secure", "3ds Max") come before the general ones ("3D").
var rules = compile([]rule{
	// 3D Secure is the card-payment authentication step, not 3D work.
	{concept: "3d secure", label: labelS, weight: weightStrong, kind: "payment step", words: "3d secure|securise|securisee|secured"},
	{concept: "3d secure", label: labelS, weight: weightStrong, kind: "payment step", words: "3 -d secure|securise|securisee|secured"},
	{concept: "3d software", label: labelM, weight: weightStrong, kind: "3D software", words: "3ds|3d max"},
	{concept: "3d software", label: labelM, weight: weightStrong, kind: "3D software", words: "3dsmax|blender|sketchup|zbrush|cinema4d|c4d"},
	{concept: "3d software", label: labelM, weight: weightStrong, kind: "3D software", words: "cinema 4d"},
	{concept: "3d secure", label: labelS, weight: weightStrong, kind: "payment step", words: "3ds|3dsecure|3ds2|3dsv2"},

	// MODELISATION.
	{concept: "3d", label: labelM, weight: weightStrong, kind: "keyword", words: "3d"},
	{concept: "3d", label: labelM, weight: weightStrong, kind: "keyword", words: "3 -d"},
	{concept: "ar", label: labelM, weight: weightStrong, kind: "keyword", words: "ar", exclude: registeredMail},
	{concept: "ar", label: labelM, weight: weightStrong, kind: "keyword", words: "realite|realites augmentee|augmentees"},
	{concept: "ar", label: labelM, weight: weightStrong, kind: "keyword", words: "augmented reality|realities"},
	{concept: "ar", label: labelM, weight: weightStrong, kind: "keyword", words: "webar|arkit|arcore|quicklook"},
	{concept: "ar", label: labelM, weight: weightStrong, kind: "keyword", words: "quick look"},
	{concept: "modelling", label: labelM, weight: weightStrong, kind: "keyword", words: "modelis*"},
	{concept: "modelling", label: labelM, weight: weightStrong, kind: "keyword", words: "modelling|modeling|modelled|modeled|modeller|modeler|modellers|modelers"},
	{concept: "model", label: labelM, weight: weightWeak, kind: "keyword", words: "modele|modeles|model|models"},
	{concept: "photogrammetry", label: labelM, weight: weightStrong, kind: "keyword", words: "photogrammetr*"},
	{concept: "scan", label: labelM, weight: weightWeak, kind: "keyword", words: "scan|scans|scanner|scanne|scannee|scannes|scannees|scanning|scanned|numerisation|numeriser"},
	{concept: "render", label: labelM, weight: weightWeak, kind: "keyword", words: "rendu|rendus|render|renders|rendering|renderings", exclude: beforeCompte},
	{concept: "mesh", label: labelM, weight: weightWeak, kind: "keyword", words: "maillage|maillages|mesh|meshes|texture|textures|texturing|texturage"},
	{concept: "3d format", label: labelM, weight: weightStrong, kind: "3D format", words: "glb|gltf|usdz|fbx|stl|3mf"},

	// SUPPORT.
	{concept: "payment", label: labelS, weight: weightStrong, kind: "keyword", words: "paiement*|payer|paye|payee|payes|payees|payez|payons|payent|payant|payment|payments|paid|pay|paying|paypal|prelevement*|prelever|preleve|prelevee|virement|virements"},
	{concept: "payment", label: labelS, weight: weightStrong, kind: "keyword", words: "carte|cartes bancaire|bancaires|bleue|bleues"},
	{concept: "payment", label: labelS, weight: weightStrong, kind: "keyword", words: "carte|cartes de credit"},
	{concept: "payment", label: labelS, weight: weightStrong, kind: "keyword", words: "credit|debit card|cards"},
	{concept: "payment", label: labelS, weight: weightStrong, kind: "keyword", words: "cb"},
	{concept: "invoice", label: labelS, weight: weightStrong, kind: "keyword", words: "factur*|invoic*|receipt|receipts|billing"},
	{concept: "refund", label: labelS, weight: weightStrong, kind: "keyword", words: "rembours*|refund*"},
	{concept: "subscription", label: labelS, weight: weightStrong, kind: "keyword", words: "abonn*|desabonn*|reabonn*|resili*|subscri*|unsubscri*"},
	{concept: "bug", label: labelS, weight: weightStrong, kind: "keyword", words: "bug|bugs|bugue|buguer|bugge|buggy|bogue|bogues|beug|beugs|beugue|glitch"},
	{concept: "error", label: labelS, weight: weightStrong, kind: "keyword", words: "erreur|erreurs|error|errors"},
	{concept: "crash", label: labelS, weight: weightStrong, kind: "keyword", words: "crash|crashs|crashes|crashe|crashed|crasher|plantage|plantages"},
	{concept: "broken", label: labelS, weight: weightWeak, kind: "keyword", words: "fonctionne|marche pas|plus"},
	{concept: "broken", label: labelS, weight: weightWeak, kind: "keyword", words: "not working"},
	{concept: "account", label: labelS, weight: weightStrong, kind: "keyword", words: "compte|comptes|account|accounts", exclude: notAnAccount},
	{concept: "password", label: labelS, weight: weightStrong, kind: "keyword", words: "mot|mots de passe"},
	{concept: "password", label: labelS, weight: weightStrong, kind: "keyword", words: "password*|passwd|mdp"},
	{concept: "login", label: labelS, weight: weightStrong, kind: "keyword", words: "connexion|connexions|login|logins|logon|signin|identifiant|identifiants"},
	{concept: "login", label: labelS, weight: weightStrong, kind: "keyword", words: "log|sign in"},
	{concept: "login", label: labelS, weight: weightWeak, kind: "keyword", words: "connecter|connecte|connectee|connectes|reconnecter"},
	{concept: "access", label: labelS, weight: weightWeak, kind: "keyword", words: "acces|access|bloque|bloquee|reinitialis*|reset"},
	{concept: "cancel", label: labelS, weight: weightWeak, kind: "keyword", words: "annul*|cancel*"},
})

func compile(rs []rule) []rule {
	for i := range rs {
		for _, w := range strings.Fields(rs[i].words) {
			var p part
			if strings.HasPrefix(w, "-") {
				p.hyphen, w = true, w[1:]
			}
			for _, a := range strings.Split(w, "|") {
				if stem, ok := strings.CutSuffix(a, "*"); ok {
					p.stems = append(p.stems, stem)
				} else {
					p.alts = append(p.alts, a)
				}
			}
			rs[i].parts = append(rs[i].parts, p)
		}
	}
	return rs
}

func (p part) matches(t token) bool {
	if p.hyphen && !isHyphen(t.sep) {
		return false
	}
	for _, a := range p.alts {
		if t.norm == a {
			return true
		}
	}
	for _, s := range p.stems {
		if strings.HasPrefix(t.norm, s) {
			return true
		}
	}
	return false
}

func isHyphen(sep string) bool {
	switch sep {
	case "-", "‐", "‑", "–":
		return true
	}
	return false
}

// match reports how many tokens r matches at i (0 when it does not).
func (r *rule) match(toks []token, i int) int {
	n := len(r.parts)
	if i+n > len(toks) {
		return 0
	}
	for k, p := range r.parts {
		if !p.matches(toks[i+k]) {
			return 0
		}
	}
	if r.exclude != nil && r.exclude(toks, i, n) {
		return 0
	}
	return n
}

func normAt(toks []token, i int) string {
	if i < 0 || i >= len(toks) {
		return ""
	}
	return toks[i].norm
}

// registeredMail: in French "AR" is also the "accusé de réception" of a registered letter.
func registeredMail(toks []token, i, _ int) bool {
	for k := i - 3; k < i; k++ {
		switch normAt(toks, k) {
		case "recommande", "recommandee", "lettre", "courrier":
			return true
		}
	}
	return false
}

// beforeCompte: "je me suis rendu compte" is "I realised", not a render.
func beforeCompte(toks []token, i, n int) bool { return normAt(toks, i+n) == "compte" }

// notAnAccount drops the idioms where "compte"/"account" is not a customer account: "se rendre
// compte", "prendre/tenir en compte", "compte tenu", "je compte (sur)", "take into account".
func notAnAccount(toks []token, i, n int) bool {
	switch normAt(toks, i-1) {
	case "en", "rendre", "rendu", "rendue", "rendus", "rends", "rend", "rendons", "rendez", "rendent",
		"tenir", "tenu", "je", "on", "il", "elle", "nous", "into", "of":
		return true
	}
	switch normAt(toks, i+n) {
	case "tenu", "sur", "rendu":
		return true
	}
	return false
}

// extMention reports whether toks[i] is a file extension written in the text: a 3D extension right
// after a dot that is itself attached to a word ("chaise.glb") or starts a word (" .step"), not the
// first word of a new sentence (". Step").
func extMention(toks []token, i int) bool {
	t := toks[i]
	if !extensions3D[t.norm] || !strings.HasSuffix(t.sep, ".") {
		return false
	}
	if t.sep == "." {
		return true
	}
	before := t.sep[:len(t.sep)-1]
	last := before[len(before)-1]
	return last == ' ' || last == '\t' || last == '\n' || last == '\r' || last == '(' || last == '"' || last == '\''
}

// hit is one concept found in the request.
type hit struct {
	concept string
	label   string
	weight  int
	reason  string
}

// analysis is what the rules found and the resulting scores.
type analysis struct {
	hits     []hit
	scoreM   int
	scoreS   int
	label    string
	clear    bool
	decision string
}

// Rules classifies r with the keyword, file and source rules alone. The label is the leading side
// (SUPPORT on a tie) and Ambiguous is set when the lead is not clear; Method is always "rules".
func Rules(r *payload.Request) Result {
	a := analyze(r)
	return Result{
		Classification: a.label,
		Ambiguous:      !a.clear,
		Method:         MethodRules,
		Reasons:        a.reasons(),
	}
}

func (a *analysis) reasons() []string {
	out := make([]string, 0, len(a.hits)+1)
	for _, h := range a.hits {
		out = append(out, fmt.Sprintf("%s: %s +%d", h.reason, h.label, h.weight))
	}
	return append(out, a.decision)
}

func analyze(r *payload.Request) *analysis {
	a := &analysis{}
	if r == nil {
		r = &payload.Request{}
	}
	a.add(sourceHint(r.Source))
	for _, f := range r.Fichiers {
		a.add(fileHit(f))
	}
	a.addText(r.Text())
	a.decide()
	return a
}

func (a *analysis) add(h *hit) {
	if h == nil {
		return
	}
	a.hits = append(a.hits, *h)
	if h.label == labelM {
		a.scoreM += h.weight
	} else {
		a.scoreS += h.weight
	}
}

// addText scores the customer's words. A concept counts once, at its strongest word; the reason
// names the first word that gave that weight.
func (a *analysis) addText(text string) {
	toks := tokenize(text)
	best := map[string]int{} // concept -> index in hits
	// reason is built only for a hit that counts: a long message repeats the same words.
	record := func(h hit, reason func() string) {
		j, seen := best[h.concept]
		if seen && h.weight <= a.hits[j].weight {
			return
		}
		h.reason = reason()
		if seen {
			a.unscore(a.hits[j])
			a.hits[j] = h
		} else {
			best[h.concept] = len(a.hits)
			a.hits = append(a.hits, h)
		}
		if h.label == labelM {
			a.scoreM += h.weight
		} else {
			a.scoreS += h.weight
		}
	}
	for i := 0; i < len(toks); {
		if extMention(toks, i) {
			t := toks[i]
			record(hit{concept: "ext " + t.norm, label: labelM, weight: weightExtInText}, func() string {
				name := fileNameAt(text, t.start-1, t.start+len(t.surface))
				return fmt.Sprintf("3D file extension .%s mentioned (%s)", t.norm, quoteShort(name))
			})
			i++
			continue
		}
		n := 0
		for k := range rules {
			ru := &rules[k]
			if n = ru.match(toks, i); n > 0 {
				words := toks[i : i+n]
				record(hit{concept: ru.concept, label: ru.label, weight: ru.weight}, func() string {
					return fmt.Sprintf("%s %s (%s)", ru.kind, quoteShort(phraseSurface(words)), phraseNorm(words))
				})
				break
			}
		}
		i += max(n, 1)
	}
}

func (a *analysis) unscore(h hit) {
	if h.label == labelM {
		a.scoreM -= h.weight
	} else {
		a.scoreS -= h.weight
	}
}

func phraseSurface(toks []token) string {
	var b strings.Builder
	for k, t := range toks {
		if k > 0 {
			if isHyphen(t.sep) {
				b.WriteString(t.sep)
			} else {
				b.WriteByte(' ')
			}
		}
		b.WriteString(t.surface)
	}
	return b.String()
}

func phraseNorm(toks []token) string {
	ws := make([]string, len(toks))
	for k, t := range toks {
		ws[k] = t.norm
	}
	return strings.Join(ws, " ")
}

// quoteShort quotes customer text for a reason, bounded so a reason stays one short line.
func quoteShort(s string) string { return fmt.Sprintf("%q", truncateRunes(s, 60)) }

// source hints: the form names the customer picked. Compared word by word after normalisation, so
// "Modélisation", "form-3d" and "support-client" all work.
var (
	sourceM = map[string]bool{"modelisation": true, "modelisations": true, "modeliser": true, "modelling": true,
		"modeling": true, "model": true, "modele": true, "3d": true, "ar": true}
	sourceS = map[string]bool{"support": true, "sav": true, "help": true, "helpdesk": true, "aide": true,
		"assistance": true, "billing": true, "facturation": true}
)

func sourceHint(source string) *hit {
	if strings.TrimSpace(source) == "" {
		return nil
	}
	var m, s bool
	for _, t := range tokenize(source) {
		m = m || sourceM[t.norm]
		s = s || sourceS[t.norm]
	}
	if m == s { // unknown form, or a name that says both
		return nil
	}
	h := &hit{concept: "source", weight: weightSource, reason: "source hint " + quoteShort(source), label: labelS}
	if m {
		h.label = labelM
	}
	return h
}

// fileHit is the strong signal of an attachment with a 3D extension, whichever of name, URL or path
// carries it.
func fileHit(f payload.File) *hit {
	name := f.Name
	for _, cand := range []string{f.Name, urlPath(f.URL), f.Path} {
		if ext := ext3D(cand); ext != "" {
			if name == "" {
				name = path.Base(strings.ReplaceAll(cand, "\\", "/"))
			}
			return &hit{concept: "file", label: labelM, weight: weightExtFile,
				reason: fmt.Sprintf("3D file extension .%s (%s)", ext, truncateRunes(name, 80))}
		}
	}
	return nil
}

func urlPath(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Path
}

func ext3D(name string) string {
	e := path.Ext(strings.TrimSpace(name))
	if len(e) < 2 {
		return ""
	}
	e = strings.ToLower(e[1:])
	if extensions3D[e] {
		return e
	}
	return ""
}

func (a *analysis) decide() {
	m, s := a.scoreM, a.scoreS
	w, l, label := m, s, labelM
	if s > m {
		w, l, label = s, m, labelS
	}
	if m == s {
		label = labelS
	}
	a.label = label
	switch {
	case w == 0:
		a.decision = "no keyword, 3D file or source hint matched: ambiguous"
	case w == l:
		a.decision = fmt.Sprintf("score MODELISATION %d, SUPPORT %d: tie, ambiguous", m, s)
	case w < minWinner:
		a.decision = fmt.Sprintf("score MODELISATION %d, SUPPORT %d: too weak (a clear winner needs %d), ambiguous", m, s, minWinner)
	case l > 0 && w < 2*l+clearMargin:
		a.decision = fmt.Sprintf("score MODELISATION %d, SUPPORT %d: too close (a clear winner needs %d), ambiguous", m, s, 2*l+clearMargin)
	default:
		a.clear = true
		a.decision = fmt.Sprintf("score MODELISATION %d, SUPPORT %d: %s", m, s, label)
	}
}
