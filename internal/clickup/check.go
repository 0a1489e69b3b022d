package clickup

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/figurative/figsupport/internal/health"
)

// Check is the doctor's view of ClickUp: the token, the parent task and its list.
func (t *Tasks) Check(ctx context.Context) []health.Check {
	var out []health.Check
	u, err := t.AuthorizedUser(ctx)
	if err != nil {
		out = append(out, health.Check{Service: "clickup", Name: "token", Status: health.Fail, Detail: explain(err)})
		return out
	}
	who := u.Username
	if who == "" {
		who = fmt.Sprintf("user %d", u.ID)
	}
	t.mu.Lock()
	t.userID = u.ID
	t.mu.Unlock()
	out = append(out, health.Check{Service: "clickup", Name: "token", Status: health.OK, Detail: "valid, belongs to " + who})

	p, err := t.GetTask(ctx, t.parent, false)
	if err != nil {
		out = append(out, health.Check{Service: "clickup", Name: "parent task", Status: health.Fail,
			Detail: fmt.Sprintf("CLICKUP_PARENT_TASK_ID=%s: %s", t.parent, explain(err))})
		return out
	}
	out = append(out, health.Check{Service: "clickup", Name: "parent task", Status: health.OK,
		Detail: fmt.Sprintf("%s %q (%s)", t.parent, p.Name, p.URL)})
	if p.List.ID == "" {
		out = append(out, health.Check{Service: "clickup", Name: "list", Status: health.Fail,
			Detail: "the parent task's answer carries no list id"})
		return out
	}
	t.mu.Lock()
	t.listID = p.List.ID
	t.mu.Unlock()
	out = append(out, health.Check{Service: "clickup", Name: "list", Status: health.OK,
		Detail: fmt.Sprintf("subtasks go to list %s %q", p.List.ID, p.List.Name)})
	return out
}

// explain turns an error into advice; it never carries the token.
func explain(err error) string {
	var e *APIError
	if errors.As(err, &e) {
		switch e.Status {
		case http.StatusUnauthorized:
			return e.Error()
		case http.StatusNotFound:
			return e.Error() + " — the task does not exist or the token's user cannot see it"
		case http.StatusTooManyRequests:
			return e.Error() + " — rate limited; try again in a minute"
		}
	}
	return err.Error()
}
