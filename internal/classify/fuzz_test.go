package classify_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/figurative/figsupport/internal/classify"
	"github.com/figurative/figsupport/internal/payload"
)

// FuzzClassify feeds arbitrary strings (invalid UTF-8 included, since Classify may get a request that
// never went through validation) to the rules-only classifier: it must not panic, must always give a
// valid label and method, and must give the same answer twice.
func FuzzClassify(f *testing.F) {
	seeds := [][4]string{
		{"modelisation", "Demande de modélisation", "Je souhaite modéliser ce produit en 3D", "chaise.glb"},
		{"support", "Paiement", "Le 3D Secure échoue, mardi, carte, article", "facture.pdf"},
		{"", "", "3-D Secure 3DS 3ds max .STEP. Step", "https://x.test/a.GLTF?x=1"},
		{"form-3d", "mode\u0301lisation", "réalité augmentée, mot de passe, rendu compte", `C:\a\b.stl`},
		{"", "\xff\xfe", "\u0301\u0301 ..obj . .3ds œuvre ß", ".glb"},
		{"", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2], s[3])
	}
	c, err := classify.New(classify.Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, source, objet, description, file string) {
		r := &payload.Request{Source: source, Objet: objet, Description: description,
			Fichiers: []payload.File{{Name: file, URL: file, Path: file}}}
		got := c.Classify(context.Background(), r)
		if got.Classification != payload.Support && got.Classification != payload.Modelisation {
			t.Fatalf("invalid label %q", got.Classification)
		}
		switch got.Method {
		case classify.MethodRules:
			if got.Ambiguous {
				t.Fatal("rules decided an ambiguous request")
			}
		case classify.MethodFallback:
			if !got.Ambiguous || got.Classification != payload.Support {
				t.Fatalf("fallback: %+v", got)
			}
		default:
			t.Fatalf("method %q without an LLM", got.Method)
		}
		if len(got.Reasons) == 0 {
			t.Fatal("no reasons")
		}
		if again := c.Classify(context.Background(), r); !reflect.DeepEqual(got, again) {
			t.Fatalf("not deterministic:\n%+v\n%+v", got, again)
		}
		if rules := classify.Rules(r); rules.Ambiguous != got.Ambiguous {
			t.Fatalf("Rules and Classify disagree on ambiguity")
		}
	})
}

// FuzzParseAnswer: whatever the LLM says, ParseAnswer returns a valid label or nothing.
func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{"SUPPORT", " modelisation. ", `{"classification":"SUPPORT"}`, "```json\n{}\n```", "SUPPORT MODELISATION", "\"", "{"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, ok := classify.ParseAnswer(s)
		if ok != (l == payload.Support || l == payload.Modelisation) || (!ok && l != "") {
			t.Fatalf("ParseAnswer(%q) = %q, %v", s, l, ok)
		}
	})
}

// BenchmarkRules measures the rules on a long hostile-looking message (no spaces, many extension
// mentions and keyword stems) and on an ordinary one.
func BenchmarkRules(b *testing.B) {
	cases := map[string]*payload.Request{
		"ordinary": {Objet: "Demande de modélisation", Description: strings.Repeat("Je souhaite modéliser ce produit en 3D pour l'AR, paiement par carte bancaire. ", 20)},
		"hostile":  {Description: strings.Repeat("a.glb.3ds-d.step", 3000) + strings.Repeat("3-d-3-d ", 3000)},
	}
	for name, r := range cases {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(r.Text())))
			for b.Loop() {
				classify.Rules(r)
			}
		})
	}
}
