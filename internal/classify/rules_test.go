package classify_test

import (
	"strings"
	"testing"

	"github.com/figurative/figsupport/internal/classify"
	"github.com/figurative/figsupport/internal/payload"
)

const (
	mod = payload.Modelisation
	sup = payload.Support
)

func text(s string) *payload.Request { return &payload.Request{Description: s} }

func TestRules(t *testing.T) {
	tests := []struct {
		name      string
		req       *payload.Request
		want      string
		ambiguous bool
		reason    string // a reason that must be there
		notReason string // a substring no reason may contain
	}{
		// Accents and case.
		{name: "accented", req: text("Demande de modélisation"), want: mod, reason: `keyword "modélisation" (modelisation)`},
		{name: "unaccented", req: text("Demande de modelisation"), want: mod},
		{name: "decomposed NFD", req: text("Demande de mode\u0301lisation"), want: mod},
		{name: "upper case accented", req: text("DEMANDE DE MODÉLISATION"), want: mod},
		{name: "mixed case support", req: text("Question sur ma FaCtUrE"), want: sup},
		{name: "ligature", req: text("Mon abonnement: cœur du problème"), want: sup},

		// Inflections.
		{name: "modéliser", req: text("Pouvez-vous modéliser mon vase ?"), want: mod},
		{name: "modélisé", req: text("Le vase modélisé la semaine dernière"), want: mod},
		{name: "modélisées", req: text("Les pièces modélisées"), want: mod},
		{name: "modelling", req: text("We need modelling for our catalogue"), want: mod},
		{name: "modeling", req: text("Quote for product modeling please"), want: mod},
		{name: "photogrammétrie", req: text("Un rendu par photogrammétrie"), want: mod},
		{name: "augmented reality", req: text("Augmented reality for our sofas"), want: mod},
		{name: "réalité augmentée", req: text("Voir nos meubles en réalité augmentée"), want: mod},
		{name: "payé", req: text("J'ai payé deux fois"), want: sup},
		{name: "payée", req: text("Commande payée mais rien reçu"), want: sup},
		{name: "paiements", req: text("Historique des paiements"), want: sup},
		{name: "remboursé", req: text("Je n'ai pas été remboursé"), want: sup},
		{name: "rembourser", req: text("Merci de me rembourser"), want: sup},
		{name: "refunded", req: text("I was never refunded"), want: sup},
		{name: "désabonner", req: text("Comment me désabonner ?"), want: sup},
		{name: "subscriptions", req: text("Manage my subscriptions"), want: sup},
		{name: "factures", req: text("Où trouver mes factures ?"), want: sup},
		{name: "invoices", req: text("Missing invoices"), want: sup},
		{name: "mot de passe", req: text("Mot de passe oublié"), want: sup, reason: `keyword "Mot de passe" (mot de passe)`},
		{name: "password", req: text("Reset my password"), want: sup},
		{name: "connexion", req: text("Problème de connexion"), want: sup},
		{name: "crash", req: text("L'application crashe au démarrage"), want: sup},
		{name: "bogue", req: text("Un bogue sur le site"), want: sup},
		{name: "carte bancaire", req: text("Ma carte bancaire est refusée"), want: sup},

		// Whole words: "ar" inside other words is not AR.
		{name: "mardi", req: text("Rendez-vous mardi"), ambiguous: true, want: sup, notReason: "(ar)"},
		{name: "carte alone", req: text("Voici ma carte de visite"), ambiguous: true, want: sup, notReason: "(ar)"},
		{name: "article", req: text("Cet article"), ambiguous: true, want: sup, notReason: "(ar)"},
		{name: "armoire", req: text("Une armoire en chêne"), ambiguous: true, want: sup, notReason: "(ar)"},
		{name: "AR as a word", req: text("Une expérience AR pour nos clients"), want: mod, reason: `keyword "AR" (ar)`},
		{name: "l'AR", req: text("Voir le produit en l'AR"), want: mod},
		{name: "AR of a registered letter", req: text("Envoyé en recommandé avec AR"), ambiguous: true, want: sup, notReason: "(ar)"},
		{name: "compteur is not compte", req: text("Le compteur"), ambiguous: true, want: sup},
		{name: "bugatti is not bug", req: text("Une Bugatti"), ambiguous: true, want: sup},
		{name: "se rendre compte", req: text("Je me suis rendu compte du retard"), ambiguous: true, want: sup, notReason: "(compte)"},
		{name: "prendre en compte", req: text("Merci de prendre en compte ma demande"), ambiguous: true, want: sup},
		{name: "mon compte", req: text("Je ne peux plus accéder à mon compte"), want: sup, reason: `(compte)`},

		// 3D Secure is a payment step, 3D alone is modelling.
		{name: "3D Secure", req: text("Le 3D Secure ne s'affiche pas"), want: sup, reason: `payment step "3D Secure"`, notReason: "(3d)"},
		{name: "3D secure lower", req: text("validation 3d secure impossible"), want: sup, notReason: "(3d)"},
		{name: "3-D Secure", req: text("3-D Secure failed"), want: sup, notReason: "(3d)"},
		{name: "3D-Secure", req: text("Échec 3D-Secure"), want: sup, notReason: "(3d)"},
		{name: "3DS", req: text("Le code 3DS n'arrive pas"), want: sup, reason: "payment step"},
		{name: "3D Sécurisé", req: text("paiement 3D sécurisé bloqué"), want: sup, notReason: "(3d)"},
		{name: "3D", req: text("Un objet en 3D"), want: mod, reason: `keyword "3D" (3d)`},
		{name: "3d lower", req: text("une vue 3d"), want: mod},
		{name: "3-D", req: text("A 3-D view"), want: mod},
		{name: "3 d' is not 3-D", req: text("Il y en a 3 d'avance"), ambiguous: true, want: sup},
		{name: "Cinema 4D is software", req: text("Un export Cinema 4D"), want: mod, notReason: "(3d)"},
		{name: "3ds Max is software", req: text("Exporté depuis 3ds Max"), want: mod, notReason: "payment"},
		{name: "3D Secure but modelling", req: text("Je voudrais modéliser en 3D et en AR mon canapé, mais le 3D Secure bloque"), want: mod, ambiguous: true,
			reason: "score MODELISATION 6, SUPPORT 3"},

		// 3D files: attachments and mentions, any case.
		{name: "attached glb", req: &payload.Request{Objet: "Bonjour", Fichiers: []payload.File{{Name: "chaise.glb", URL: "https://x.test/a"}}},
			want: mod, reason: "3D file extension .glb (chaise.glb)"},
		{name: "attached GLB upper", req: &payload.Request{Objet: "Bonjour", Fichiers: []payload.File{{Name: "CHAISE.GLB"}}}, want: mod},
		{name: "extension in URL only", req: &payload.Request{Objet: "Bonjour", Fichiers: []payload.File{{Name: "fichier", URL: "https://cdn.test/u/Model.Gltf?sig=abc"}}}, want: mod, reason: ".gltf (fichier)"},
		{name: "extension in path only", req: &payload.Request{Objet: "Bonjour", Fichiers: []payload.File{{Path: `C:\scans\Piece.STL`}}}, want: mod, reason: ".stl (Piece.STL)"},
		{name: "photo only", req: &payload.Request{Objet: "Bonjour", Fichiers: []payload.File{{Name: "photo.jpg"}}}, ambiguous: true, want: sup},
		{name: "extension mentioned", req: text("Je vous envoie un fichier .usdz"), want: mod, reason: "3D file extension .usdz mentioned"},
		{name: "file name mentioned", req: text("voir table.OBJ ci-joint"), want: mod, reason: `.obj mentioned ("table.OBJ")`},
		{name: "sentence Step is not .step", req: text("Fin. Step one"), ambiguous: true, want: sup},
		{name: "bare format word", req: text("Un export FBX"), want: mod, reason: `3D format "FBX"`},
		{name: "3d files beat a payment word", req: &payload.Request{Objet: "Paiement et fichiers", Fichiers: []payload.File{{Name: "a.glb"}, {Name: "b.obj"}}}, want: mod},

		// The form source.
		{name: "source modelisation", req: &payload.Request{Source: "modelisation", Objet: "Bonjour"}, want: mod, reason: `source hint "modelisation"`},
		{name: "source Modélisation", req: &payload.Request{Source: "Modélisation", Objet: "Bonjour"}, want: mod},
		{name: "source 3d", req: &payload.Request{Source: "form-3d", Objet: "Bonjour"}, want: mod},
		{name: "source support", req: &payload.Request{Source: "support", Objet: "Bonjour"}, want: sup, reason: `source hint "support"`},
		{name: "unknown source", req: &payload.Request{Source: "contact", Objet: "Bonjour"}, ambiguous: true, want: sup},
		{name: "source against strong text", req: &payload.Request{Source: "support", Objet: "Modéliser mon vase en 3D pour l'AR, fichier vase.glb"}, want: mod},
		{name: "source against one keyword", req: &payload.Request{Source: "modelisation", Objet: "Erreur de paiement"}, ambiguous: true, want: sup},

		// Ambiguity.
		{name: "neither", req: text("Bonjour, j'ai une question"), ambiguous: true, want: sup, reason: "no keyword"},
		{name: "tie", req: text("Modéliser et facture"), ambiguous: true, want: sup, reason: "tie"},
		{name: "close call", req: text("Je n'arrive pas à payer la modélisation 3D"), ambiguous: true, want: mod, reason: "too close"},
		{name: "weak only", req: text("Quel modèle choisir ?"), ambiguous: true, want: mod, reason: "too weak"},
		{name: "clear despite the other side", req: text("Je voudrais modéliser ma chaise en 3D pour l'AR. Comment se passe le paiement ?"), want: mod},
		{name: "repetition does not inflate", req: text("paiement paiement paiement paiement modélisation"), ambiguous: true, want: sup},
		{name: "nil-free empty request", req: &payload.Request{}, ambiguous: true, want: sup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify.Rules(tt.req)
			if got.Method != classify.MethodRules {
				t.Errorf("method = %q, want rules", got.Method)
			}
			if got.Classification != tt.want || got.Ambiguous != tt.ambiguous {
				t.Errorf("got %s ambiguous=%v, want %s ambiguous=%v\nreasons: %q", got.Classification, got.Ambiguous, tt.want, tt.ambiguous, got.Reasons)
			}
			all := strings.Join(got.Reasons, "\n")
			if tt.reason != "" && !strings.Contains(all, tt.reason) {
				t.Errorf("no reason contains %q:\n%s", tt.reason, all)
			}
			if tt.notReason != "" && strings.Contains(all, tt.notReason) {
				t.Errorf("a reason contains %q:\n%s", tt.notReason, all)
			}
			if len(got.Reasons) == 0 {
				t.Error("no reasons")
			}
		})
	}
}

func TestRulesEveryExtension(t *testing.T) {
	for _, ext := range []string{".glb", ".gltf", ".usdz", ".obj", ".mtl", ".fbx", ".stl", ".blend", ".3ds", ".dae", ".ply", ".step", ".stp", ".3mf"} {
		for _, name := range []string{"piece" + ext, "PIECE" + strings.ToUpper(ext), "Piece" + strings.ToUpper(ext[:2]) + ext[2:]} {
			t.Run(name, func(t *testing.T) {
				got := classify.Rules(&payload.Request{Objet: "Bonjour", Fichiers: []payload.File{{Name: name}}})
				if got.Classification != mod || got.Ambiguous {
					t.Errorf("attached: got %s ambiguous=%v: %q", got.Classification, got.Ambiguous, got.Reasons)
				}
				got = classify.Rules(text("Voici le fichier " + name + " pour la pièce"))
				if got.Classification != mod || got.Ambiguous {
					t.Errorf("mentioned: got %s ambiguous=%v: %q", got.Classification, got.Ambiguous, got.Reasons)
				}
			})
		}
	}
}

func TestNilRequest(t *testing.T) {
	if got := classify.Rules(nil); !got.Ambiguous || got.Classification != sup || len(got.Reasons) == 0 {
		t.Errorf("Rules(nil) = %+v", got)
	}
	c, err := classify.New(classify.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Classify(t.Context(), nil); got.Method != classify.MethodFallback {
		t.Errorf("Classify(nil) = %+v", got)
	}
}
