package cmd

import (
	"context"
	"reflect"
	"testing"

	"github.com/spf13/cobra"
)

// Flags and arguments land in each command's options: every command built with a runF that
// records what it was given, run through cobra as the root runs it.
func TestFlagsBecomeOptions(t *testing.T) {
	g := &Globals{}
	var got any
	record := func(o any) { got = o }
	tests := []struct {
		name string
		cmd  *cobra.Command
		args []string
		want any
	}{
		{"classify", newClassifyCmd(g, func(_ context.Context, o *classifyOptions) error { record(*o); return nil }), []string{"--no-llm", "a.json"}, classifyOptions{Globals: g, File: "a.json", NoLLM: true}},
		{"process", newProcessCmd(g, func(_ context.Context, o *processOptions) error { record(*o); return nil }), []string{"--force", "-"}, processOptions{Globals: g, File: "-", Force: true}},
		{"process --eml", newProcessCmd(g, func(_ context.Context, o *processOptions) error { record(*o); return nil }), []string{"--eml", "m.eml", "--no-llm"}, processOptions{Globals: g, EML: "m.eml", NoLLM: true}},
		{"upload", newUploadCmd(g, func(_ context.Context, o *uploadOptions) error { record(*o); return nil }), []string{"a.glb", "https://x.example/b.jpg"}, uploadOptions{Globals: g, Sources: []string{"a.glb", "https://x.example/b.jpg"}}},
		{"ticket find", newTicketFindCmd(g, func(_ context.Context, o *ticketFindOptions) error { record(*o); return nil }), []string{"--email", "a@b.fr", "--at", "2026-01-01T00:00:00Z"}, ticketFindOptions{Globals: g, Email: "a@b.fr", At: "2026-01-01T00:00:00Z"}},
		{"ticket create", newTicketCreateCmd(g, func(_ context.Context, o *ticketCreateOptions) error { record(*o); return nil }), []string{"--email", "a@b.fr", "--subject", "S", "--body", "B", "--name", "N", "--classification", "modelisation"},
			ticketCreateOptions{Globals: g, Email: "a@b.fr", Subject: "S", Body: "B", Name: "N", Classification: "modelisation"}},
		{"ticket create default classification", newTicketCreateCmd(g, func(_ context.Context, o *ticketCreateOptions) error { record(*o); return nil }), []string{"--email", "a@b.fr", "--subject", "S"}, ticketCreateOptions{Globals: g, Email: "a@b.fr", Subject: "S", Classification: "SUPPORT"}},
		{"ticket close", newTicketCloseCmd(g, func(_ context.Context, o *ticketCloseOptions) error { record(*o); return nil }), []string{"42"}, ticketCloseOptions{Globals: g, ID: "42"}},
		{"note", newNoteCmd(g, func(_ context.Context, o *noteOptions) error { record(*o); return nil }), []string{"--contact", "7", "--body", "B"}, noteOptions{Globals: g, Contact: "7", Body: "B", Title: "Note"}},
		{"subtask create", newSubtaskCreateCmd(g, func(_ context.Context, o *subtaskOptions) error { record(*o); return nil }), []string{"--name", "N", "--description", "D"}, subtaskOptions{Globals: g, Name: "N", Description: "D"}},
		{"subtask update", newSubtaskUpdateCmd(g, func(_ context.Context, o *subtaskOptions) error { record(*o); return nil }), []string{"9", "--replace", "--description", "D"}, subtaskOptions{Globals: g, ID: "9", Description: "D", Replace: true}},
		{"notify", newNotifyCmd(g, func(_ context.Context, o *notifyOptions) error { record(*o); return nil }), []string{"--result", "-"}, notifyOptions{Globals: g, Result: "-"}},
		{"requests list", newRequestsListCmd(g, func(_ context.Context, o *requestsListOptions) error { record(*o); return nil }), []string{"--status", "failed", "--status", "incomplete", "--limit", "3"},
			requestsListOptions{Globals: g, Statuses: []string{"failed", "incomplete"}, Limit: 3}},
		{"requests show", newRequestsShowCmd(g, func(_ context.Context, o *requestsShowOptions) error { record(*o); return nil }), []string{"demo-1"}, requestsShowOptions{Globals: g, ID: "demo-1"}},
		{"requests retry --failed", newRequestsRetryCmd(g, func(_ context.Context, o *requestsRetryOptions) error { record(*o); return nil }), []string{"--failed"}, requestsRetryOptions{Globals: g, Failed: true}},
		{"doctor", newDoctorCmd(g, func(_ context.Context, o *doctorOptions) error { record(*o); return nil }), nil, doctorOptions{Globals: g}},
		{"mail poll", newMailPollCmd(g, func(_ context.Context, o *mailPollOptions) error { record(*o); return nil }), []string{"--limit", "5"}, mailPollOptions{Globals: g, Limit: 5}},
		{"serve", newServeCmd(g, func(_ context.Context, o *serveOptions) error { record(*o); return nil }), []string{"--addr", "127.0.0.1:0", "--mode", "async"}, serveOptions{Globals: g, Addr: "127.0.0.1:0", Mode: "async"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			c := tt.cmd
			c.SetArgs(tt.args)
			if err := c.Execute(); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("options = %+v\nwant      %+v", got, tt.want)
			}
		})
	}
}
