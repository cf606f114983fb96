package sandboxagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ConfigOption is one of a session's config options (ACP
// SessionConfigOption).
type ConfigOption struct {
	ID           string              `json:"id"`
	Name         string              `json:"name"`
	Type         string              `json:"type"`
	Category     string              `json:"category,omitempty"`
	Description  string              `json:"description,omitempty"`
	CurrentValue string              `json:"currentValue,omitempty"`
	Options      []ConfigOptionValue `json:"options,omitempty"`
}

// ConfigOptionValue is one selectable value, or a group of them.
type ConfigOptionValue struct {
	Value       string              `json:"value,omitempty"`
	Name        string              `json:"name"`
	Description string              `json:"description,omitempty"`
	Group       string              `json:"group,omitempty"`
	Options     []ConfigOptionValue `json:"options,omitempty"`
}

// AllowedValues lists a select option's values (one level of groups); an
// empty list allows anything.
func (o ConfigOption) AllowedValues() []string {
	if o.Type != "select" {
		return nil
	}
	var out []string
	add := func(v string) {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	for _, v := range o.Options {
		add(v.Value)
		for _, g := range v.Options {
			add(g.Value)
		}
	}
	return out
}

// SessionModes is the ACP SessionModeState.
type SessionModes struct {
	CurrentModeID  string        `json:"currentModeId"`
	AvailableModes []SessionMode `json:"availableModes"`
}

// SessionMode is one mode.
type SessionMode struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Description *string `json:"description,omitempty"`
}

func decodeOptions(raw json.RawMessage) []ConfigOption {
	var all []json.RawMessage
	_ = json.Unmarshal(raw, &all)
	var out []ConfigOption
	for _, r := range all {
		var o ConfigOption
		if json.Unmarshal(r, &o) == nil && o.ID != "" && o.Name != "" && o.Type != "" {
			out = append(out, o)
		}
	}
	return out
}

// ConfigOptions returns the session's config options: the cached ones, or
// the agent's (GET /v1/agents/{agent}?config=true), which are then cached.
func (s *Session) ConfigOptions(ctx context.Context) ([]ConfigOption, error) {
	rec := s.Record()
	if rec.ConfigOptions != nil {
		return decodeOptions(rec.ConfigOptions), nil
	}
	info, err := s.c.GetAgent(ctx, rec.Agent, AgentQuery{Config: true})
	if err != nil {
		return nil, err
	}
	opts := decodeOptions(info.ConfigOptions)
	if opts == nil {
		opts = []ConfigOption{}
	}
	if m := decodeModes(rec.Modes); m != nil && m.CurrentModeID != "" {
		for i := range opts {
			if opts[i].Category == "mode" {
				opts[i].CurrentValue = m.CurrentModeID
			}
		}
	}
	b, _ := json.Marshal(opts)
	err = s.update(ctx, func(r *SessionRecord) { r.ConfigOptions = b })
	return opts, err
}

func decodeModes(raw json.RawMessage) *SessionModes {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var m SessionModes
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return &m
}

// Modes returns the session's modes, derived from the mode config option
// when the agent reported none; nil when there are none.
func (s *Session) Modes(ctx context.Context) (*SessionModes, error) {
	if m := decodeModes(s.Record().Modes); m != nil && len(m.AvailableModes) > 0 {
		return m, nil
	}
	opts, err := s.ConfigOptions(ctx)
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		if o.Category == "mode" && o.Type == "select" {
			m := &SessionModes{CurrentModeID: o.CurrentValue}
			for _, v := range o.Options {
				if v.Value != "" {
					m.AvailableModes = append(m.AvailableModes, SessionMode{ID: v.Value, Name: v.Name})
				}
			}
			if m.CurrentModeID == "" && len(m.AvailableModes) > 0 {
				m.CurrentModeID = m.AvailableModes[0].ID
			}
			return m, nil
		}
	}
	return decodeModes(s.Record().Modes), nil
}

// update re-reads the record, applies fn and stores it.
func (s *Session) update(ctx context.Context, fn func(*SessionRecord)) error {
	rec, err := s.c.modifyRecord(ctx, s.id, s.Record, fn)
	if err != nil {
		return err
	}
	s.setRec(rec)
	return nil
}

// modifyRecord re-reads id's record (fallback when the store has none; nil
// → ErrSessionNotFound), applies fn and stores the result, under recMu.
// fn must not do I/O.
func (c *Client) modifyRecord(ctx context.Context, id string, fallback func() SessionRecord, fn func(*SessionRecord)) (SessionRecord, error) {
	if err := c.recMu.lock(ctx, "the session records (another update is writing to the store)"); err != nil {
		return SessionRecord{}, err
	}
	defer c.recMu.unlock()
	rec, ok, err := c.store.GetSession(ctx, id)
	if err != nil {
		return SessionRecord{}, fmt.Errorf("sandboxagent: read session %q: %w", id, err)
	}
	if !ok {
		if fallback == nil {
			return SessionRecord{}, fmt.Errorf("%w: %q", ErrSessionNotFound, id)
		}
		rec = fallback()
	}
	fn(&rec)
	if err := c.store.UpdateSession(ctx, rec); err != nil {
		return SessionRecord{}, fmt.Errorf("sandboxagent: update session %q: %w", id, err)
	}
	return rec, nil
}

// SetMode sets the session mode (session/set_mode), falling back to the
// mode config option when the agent does not implement set_mode (-32601).
func (s *Session) SetMode(ctx context.Context, modeID string) error {
	modeID = strings.TrimSpace(modeID)
	if modeID == "" {
		return errors.New("sandboxagent: SetMode requires a non-empty modeId")
	}
	if m := decodeModes(s.Record().Modes); m != nil && len(m.AvailableModes) > 0 {
		var known []string
		for _, am := range m.AvailableModes {
			known = append(known, am.ID)
		}
		if !slices.Contains(known, modeID) {
			return &UnsupportedSessionValueError{SessionID: s.id, Category: "mode", ConfigID: "mode", RequestedValue: modeID, AllowedValues: known}
		}
	}
	_, err := s.Call(ctx, "session/set_mode", map[string]any{"modeId": modeID})
	var re *RPCError
	if errors.As(err, &re) && re.Code == -32601 {
		return s.setCategory(ctx, "mode", modeID)
	}
	if err != nil {
		return err
	}
	return s.update(ctx, func(r *SessionRecord) {
		setCurrentMode(r, modeID)
		r.ConfigOptions = setCurrent(r.ConfigOptions, func(o ConfigOption) bool { return o.Category == "mode" }, modeID)
	})
}

// setCurrentMode records modeID as the current mode in rec.Modes, keeping
// the available modes (none when the record had no mode state).
func setCurrentMode(rec *SessionRecord, modeID string) {
	m := decodeModes(rec.Modes)
	if m == nil {
		m = &SessionModes{AvailableModes: []SessionMode{}}
	}
	m.CurrentModeID = modeID
	rec.Modes, _ = json.Marshal(m)
}

// SetModel selects the model (the config option of category "model").
func (s *Session) SetModel(ctx context.Context, model string) error {
	return s.setCategory(ctx, "model", model)
}

// SetThoughtLevel selects the thought level (category "thought_level").
func (s *Session) SetThoughtLevel(ctx context.Context, level string) error {
	return s.setCategory(ctx, "thought_level", level)
}

func (s *Session) setCategory(ctx context.Context, category, value string) error {
	value = strings.TrimSpace(value)
	if value == "" {
		return fmt.Errorf("sandboxagent: setting %s requires a non-empty value", category)
	}
	opts, err := s.ConfigOptions(ctx)
	if err != nil {
		return err
	}
	var cats []string
	for _, o := range opts {
		if o.Category == category {
			return s.setOption(ctx, o, value)
		}
		if o.Category != "" && !slices.Contains(cats, o.Category) {
			cats = append(cats, o.Category)
		}
	}
	slices.Sort(cats)
	return &UnsupportedSessionCategoryError{SessionID: s.id, Category: category, AvailableCategories: cats}
}

// SetConfigOption sets a config option by id after checking it exists and
// allows the value.
func (s *Session) SetConfigOption(ctx context.Context, configID, value string) error {
	configID, value = strings.TrimSpace(configID), strings.TrimSpace(value)
	if configID == "" {
		return errors.New("sandboxagent: SetConfigOption requires a non-empty configId")
	}
	if value == "" {
		return errors.New("sandboxagent: SetConfigOption requires a non-empty value")
	}
	opts, err := s.ConfigOptions(ctx)
	if err != nil {
		return err
	}
	var ids []string
	for _, o := range opts {
		if o.ID == configID {
			return s.setOption(ctx, o, value)
		}
		ids = append(ids, o.ID)
	}
	return &UnsupportedSessionConfigOptionError{SessionID: s.id, ConfigID: configID, AvailableConfigIDs: ids}
}

// setOption checks that opt allows value, sets it on the agent
// (session/set_config_option) and records it: the agent's returned options
// when it sends them, else value as opt's current value, and as the
// current mode when opt is the mode option. value is already trimmed and
// non-empty.
func (s *Session) setOption(ctx context.Context, opt ConfigOption, value string) error {
	if av := opt.AllowedValues(); len(av) > 0 && !slices.Contains(av, value) {
		cat := opt.Category
		if cat == "" {
			cat = "uncategorized"
		}
		return &UnsupportedSessionValueError{SessionID: s.id, Category: cat, ConfigID: opt.ID, RequestedValue: value, AllowedValues: av}
	}
	res, err := s.Call(ctx, "session/set_config_option", map[string]any{"configId": opt.ID, "value": value})
	if err != nil {
		return err
	}
	var r struct {
		ConfigOptions json.RawMessage `json:"configOptions"`
	}
	_ = json.Unmarshal(res, &r)
	return s.update(ctx, func(rec *SessionRecord) {
		if len(r.ConfigOptions) > 0 && r.ConfigOptions[0] == '[' {
			rec.ConfigOptions = r.ConfigOptions
		} else {
			rec.ConfigOptions = setCurrent(rec.ConfigOptions, func(o ConfigOption) bool { return o.ID == opt.ID }, value)
		}
		if opt.Category == "mode" {
			setCurrentMode(rec, value)
		}
	})
}

// setCurrent sets currentValue on matching options, keeping unknown fields.
func setCurrent(raw json.RawMessage, match func(ConfigOption) bool, value string) json.RawMessage {
	if raw == nil {
		return nil
	}
	var all []map[string]any
	if json.Unmarshal(raw, &all) != nil {
		return raw
	}
	for _, m := range all {
		b, _ := json.Marshal(m)
		var o ConfigOption
		_ = json.Unmarshal(b, &o)
		if match(o) {
			m["currentValue"] = value
		}
	}
	b, err := json.Marshal(all)
	if err != nil {
		return raw
	}
	return b
}

// applySessionUpdate keeps the record in step with config_option_update and
// current_mode_update notifications.
func (c *Client) applySessionUpdate(ctx context.Context, local string, raw json.RawMessage, s *Session) {
	var n struct {
		Params struct {
			Update struct {
				SessionUpdate string          `json:"sessionUpdate"`
				ConfigOptions json.RawMessage `json:"configOptions"`
				CurrentModeID string          `json:"currentModeId"`
			} `json:"update"`
		} `json:"params"`
	}
	if json.Unmarshal(raw, &n) != nil {
		return
	}
	u := n.Params.Update
	if u.SessionUpdate != "config_option_update" && u.SessionUpdate != "current_mode_update" {
		return
	}
	rec, err := c.modifyRecord(ctx, local, nil, func(rec *SessionRecord) {
		switch u.SessionUpdate {
		case "config_option_update":
			if len(u.ConfigOptions) > 0 && u.ConfigOptions[0] == '[' {
				rec.ConfigOptions = u.ConfigOptions
			}
		case "current_mode_update":
			setCurrentMode(rec, u.CurrentModeID)
		}
	})
	if err == nil && s != nil {
		s.setRec(rec)
	}
}
