package bench

import (
	"fmt"
	"time"
)

// Services a call goes to.
const (
	HubSpot = "hubspot"
	ClickUp = "clickup"
	S3      = "s3"
	SMTP    = "smtp" // loopback, no injected latency
)

// Call is one outside call of a request and the calls whose answers it needs.
type Call struct {
	Name    string
	Service string
	After   []string
}

// Graph is a request's calls with their dependencies: the least any implementation must wait is
// its longest chain (the floor); doing every call one after another costs their sum.
type Graph []Call

func (l Latencies) of(service string) time.Duration {
	switch service {
	case HubSpot:
		return l.HubSpot
	case ClickUp:
		return l.ClickUp
	case S3:
		return l.S3
	}
	return 0
}

// Floor is the longest chain of dependent calls: no order of the calls finishes sooner.
func (g Graph) Floor(l Latencies) (time.Duration, error) {
	done := map[string]time.Duration{}
	var at func(name string, seen map[string]bool) (time.Duration, error)
	byName := map[string]Call{}
	for _, c := range g {
		byName[c.Name] = c
	}
	at = func(name string, seen map[string]bool) (time.Duration, error) {
		if d, ok := done[name]; ok {
			return d, nil
		}
		c, ok := byName[name]
		if !ok {
			return 0, fmt.Errorf("call %q is not in the graph", name)
		}
		if seen[name] {
			return 0, fmt.Errorf("call %q depends on itself", name)
		}
		seen[name] = true
		var start time.Duration
		for _, dep := range c.After {
			d, err := at(dep, seen)
			if err != nil {
				return 0, err
			}
			start = max(start, d)
		}
		delete(seen, name)
		done[name] = start + l.of(c.Service)
		return done[name], nil
	}
	var floor time.Duration
	for _, c := range g {
		d, err := at(c.Name, map[string]bool{})
		if err != nil {
			return 0, err
		}
		floor = max(floor, d)
	}
	return floor, nil
}

// Sequential is the sum of every call's latency.
func (g Graph) Sequential(l Latencies) time.Duration {
	var sum time.Duration
	for _, c := range g {
		sum += l.of(c.Service)
	}
	return sum
}

// Calls counts the graph's calls per service.
func (g Graph) Calls() Calls {
	var n Calls
	for _, c := range g {
		switch c.Service {
		case HubSpot:
			n.HubSpot++
		case ClickUp:
			n.ClickUp++
		case S3:
			n.S3++
		}
	}
	return n
}

// NewModelisation is a new MODELISATION request with two files from a new customer, warm (the
// custom properties and the ClickUp list known): the fewest calls the APIs allow, each waiting
// only for what it needs.
var NewModelisation = Graph{
	{Name: "contact", Service: HubSpot}, // POST contacts (a 409 gives the existing id)
	{Name: "upload 1", Service: S3},     // PutObject, beside the contact
	{Name: "upload 2", Service: S3},
	// The ticket is associated with the contact in its create and carries the file URLs.
	{Name: "ticket", Service: HubSpot, After: []string{"contact", "upload 1", "upload 2"}},
	// The subtask's description links the ticket, so it needs the ticket's id.
	{Name: "subtask", Service: ClickUp, After: []string{"ticket"}},
	// The ticket records its subtask (clickup_subtask_id): a PATCH once both exist.
	{Name: "subtask link", Service: HubSpot, After: []string{"subtask"}},
	// The note of files on the contact names the ticket.
	{Name: "note", Service: HubSpot, After: []string{"ticket"}},
	// The admin's e-mail links the ticket and the subtask.
	{Name: "notify", Service: SMTP, After: []string{"subtask"}},
}

// FollowUp is a follow-up with one file to the customer's open ticket (remembered by the
// journal, read by id; its subtask exists).
var FollowUp = Graph{
	{Name: "contact", Service: HubSpot},
	{Name: "upload", Service: S3},
	// The journal remembers the contact's ticket by contact id; the ticket is read to check it is
	// still open and recent, and gives the subtask's id.
	{Name: "ticket read", Service: HubSpot, After: []string{"contact"}},
	{Name: "note", Service: HubSpot, After: []string{"ticket read", "upload"}},
	// Last message time and the new file URL, in one PATCH.
	{Name: "ticket update", Service: HubSpot, After: []string{"ticket read", "upload"}},
	// ClickUp has no append: the description is read, then written with the new block.
	{Name: "subtask read", Service: ClickUp, After: []string{"ticket read"}},
	{Name: "subtask write", Service: ClickUp, After: []string{"subtask read", "upload"}},
	{Name: "notify", Service: SMTP, After: []string{"ticket read", "upload"}},
}
