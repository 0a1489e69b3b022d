package graphfake

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/figurative/figsupport/internal/fakes/faults"
)

// A fault plan fails the token endpoint and sendMail the way Microsoft and the network do; a
// lost answer still delivers the message.
func TestFaultPlan(t *testing.T) {
	tests := []struct {
		kind     faults.Kind
		wantErr  bool
		wantCode int
		wantMail bool
	}{
		{faults.Status, false, 503, false},
		{faults.Reset, true, 0, false},
		{faults.Lost, true, 0, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			s := New(t)
			form := url.Values{"client_id": {ClientID}, "client_secret": {ClientSecret}, "grant_type": {"client_credentials"},
				"scope": {"https://graph.microsoft.com/.default"}}
			resp, err := http.PostForm(s.TokenURL(), form)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("token: %v %v", resp, err)
			}
			resp.Body.Close()
			var tok string
			s.mu.Lock()
			for k := range s.issued {
				tok = k
			}
			s.mu.Unlock()
			p := &faults.Plan{Seed: 1, Rate: 1, Kinds: []faults.Kind{tt.kind}, Statuses: []int{503}}
			s.SetFaults(p)
			req, _ := http.NewRequest("POST", s.URL+"/v1.0/users/support@example.com/sendMail",
				strings.NewReader(`{"message":{"subject":"s","body":{"contentType":"Text","content":"c"},"toRecipients":[{"emailAddress":{"address":"a@example.com"}}]}}`))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err = http.DefaultClient.Do(req)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tt.wantErr)
			}
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != tt.wantCode {
					t.Errorf("status %d, want %d", resp.StatusCode, tt.wantCode)
				}
			}
			if got := len(s.Mails()) == 1; got != tt.wantMail {
				t.Errorf("mail delivered: %v, want %v", got, tt.wantMail)
			}
		})
	}
}
