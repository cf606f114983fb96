package mockagent

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"

	acp "github.com/coder/acp-go-sdk"
)

// Error codes used besides the SDK's standard ones.
const (
	codeResourceNotFound = -32002
	codeInternalError    = -32603
)

// configDef describes one select config option of a session.
type configDef struct {
	id       string
	name     string
	category acp.SessionConfigOptionCategory
	initial  string
	options  []configValue
}

type configValue struct{ name, value string }

const (
	configModel        = "model"
	configMode         = "mode"
	configThoughtLevel = "thought_level"
)

// configDefs are the config options of every session, in the order they are
// reported.
var configDefs = []configDef{
	{
		id: configModel, name: "Model", category: acp.SessionConfigOptionCategoryModel, initial: "mock",
		options: []configValue{{"Mock", "mock"}, {"Mock Fast", "mock-fast"}},
	},
	{
		id: configMode, name: "Mode", category: acp.SessionConfigOptionCategoryMode, initial: "normal",
		options: []configValue{{"Normal", "normal"}, {"Plan", "plan"}},
	},
	{
		id: configThoughtLevel, name: "Thought Level", category: acp.SessionConfigOptionCategoryThoughtLevel, initial: "low",
		options: []configValue{{"Low", "low"}, {"Medium", "medium"}, {"High", "high"}},
	},
}

func findConfigDef(id string) (configDef, bool) {
	for _, d := range configDefs {
		if d.id == id {
			return d, true
		}
	}
	return configDef{}, false
}

func (d configDef) has(value string) bool {
	return slices.ContainsFunc(d.options, func(v configValue) bool { return v.value == value })
}

// message is one entry of a session's history.
type message struct {
	user bool
	text string
}

type session struct {
	id           acp.SessionId
	cwd          string
	values       map[string]string // config id -> current value
	history      []message
	nextToolCall int
	turnSeq      int
	turnCancel   context.CancelFunc // in-flight prompt, if any
	turnID       int
}

// agent implements acp.Agent, acp.AgentLoader and the unstable
// session/set_model method.
type agent struct {
	conn  *acp.AgentSideConnection
	out   *output
	log   io.Writer
	calls callTracker

	stopCtx context.Context
	stop    context.CancelFunc
	// exitReq receives the exit code when a prompt asks to exit; the prompt
	// then waits for released, which Run closes once the output is closed.
	exitReq  chan int
	released chan struct{}

	mu          sync.Mutex
	caps        acp.ClientCapabilities
	sessions    map[acp.SessionId]*session
	order       []acp.SessionId
	nextSession int
}

var (
	_ acp.Agent       = (*agent)(nil)
	_ acp.AgentLoader = (*agent)(nil)
)

func newAgent(out *output, log io.Writer) *agent {
	stopCtx, stop := context.WithCancel(context.Background())
	return &agent{
		out:      out,
		log:      log,
		stopCtx:  stopCtx,
		stop:     stop,
		exitReq:  make(chan int, 1),
		released: make(chan struct{}),
		calls:    callTracker{changed: out.changed},
		sessions: make(map[acp.SessionId]*session),
	}
}

// enter registers a request handler call; the returned error is non-nil when
// Run is shutting down. Each successful enter is paired with leave.
func (a *agent) enter() error {
	if !a.calls.enter(true) {
		return acp.NewInternalError(map[string]any{"error": errShuttingDown.Error()})
	}
	return nil
}

func (a *agent) leave() { a.calls.leave(true) }

func notFound(id acp.SessionId) error {
	return &acp.RequestError{
		Code:    codeResourceNotFound,
		Message: "Resource not found",
		Data:    map[string]any{"sessionId": string(id)},
	}
}

// lookup returns the session; the caller must hold a.mu.
func (a *agent) lookup(id acp.SessionId) (*session, error) {
	s, ok := a.sessions[id]
	if !ok {
		return nil, notFound(id)
	}
	return s, nil
}

func (a *agent) Initialize(ctx context.Context, p acp.InitializeRequest) (acp.InitializeResponse, error) {
	if err := a.enter(); err != nil {
		return acp.InitializeResponse{}, err
	}
	defer a.leave()
	a.mu.Lock()
	a.caps = p.ClientCapabilities
	a.mu.Unlock()
	return acp.InitializeResponse{
		ProtocolVersion: acp.ProtocolVersionNumber,
		AgentCapabilities: acp.AgentCapabilities{
			LoadSession:        true,
			PromptCapabilities: acp.PromptCapabilities{EmbeddedContext: true},
		},
		AgentInfo:   &acp.Implementation{Name: AgentName, Version: Version},
		AuthMethods: []acp.AuthMethod{},
	}, nil
}

func (a *agent) Authenticate(ctx context.Context, p acp.AuthenticateRequest) (acp.AuthenticateResponse, error) {
	if err := a.enter(); err != nil {
		return acp.AuthenticateResponse{}, err
	}
	defer a.leave()
	return acp.AuthenticateResponse{}, nil
}

func (a *agent) NewSession(ctx context.Context, p acp.NewSessionRequest) (acp.NewSessionResponse, error) {
	if err := a.enter(); err != nil {
		return acp.NewSessionResponse{}, err
	}
	defer a.leave()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nextSession++
	s := &session{
		id:     acp.SessionId(fmt.Sprintf("mock-session-%d", a.nextSession)),
		cwd:    p.Cwd,
		values: make(map[string]string, len(configDefs)),
	}
	for _, d := range configDefs {
		s.values[d.id] = d.initial
	}
	a.sessions[s.id] = s
	a.order = append(a.order, s.id)
	return acp.NewSessionResponse{
		SessionId:     s.id,
		Modes:         s.modeState(),
		ConfigOptions: s.configOptions(),
	}, nil
}

func (a *agent) LoadSession(ctx context.Context, p acp.LoadSessionRequest) (acp.LoadSessionResponse, error) {
	if err := a.enter(); err != nil {
		return acp.LoadSessionResponse{}, err
	}
	defer a.leave()
	a.mu.Lock()
	s, err := a.lookup(p.SessionId)
	if err != nil {
		a.mu.Unlock()
		return acp.LoadSessionResponse{}, err
	}
	s.cwd = p.Cwd
	history := slices.Clone(s.history)
	a.mu.Unlock()

	for _, m := range history {
		u := acp.UpdateAgentMessageText(m.text)
		if m.user {
			u = acp.UpdateUserMessageText(m.text)
		}
		if err := a.conn.SessionUpdate(ctx, acp.SessionNotification{SessionId: p.SessionId, Update: u}); err != nil {
			return acp.LoadSessionResponse{}, err
		}
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	return acp.LoadSessionResponse{Modes: s.modeState(), ConfigOptions: s.configOptions()}, nil
}

func (a *agent) ResumeSession(ctx context.Context, p acp.ResumeSessionRequest) (acp.ResumeSessionResponse, error) {
	if err := a.enter(); err != nil {
		return acp.ResumeSessionResponse{}, err
	}
	defer a.leave()
	a.mu.Lock()
	defer a.mu.Unlock()
	s, err := a.lookup(p.SessionId)
	if err != nil {
		return acp.ResumeSessionResponse{}, err
	}
	if p.Cwd != "" {
		s.cwd = p.Cwd
	}
	return acp.ResumeSessionResponse{Modes: s.modeState(), ConfigOptions: s.configOptions()}, nil
}

func (a *agent) ListSessions(ctx context.Context, p acp.ListSessionsRequest) (acp.ListSessionsResponse, error) {
	if err := a.enter(); err != nil {
		return acp.ListSessionsResponse{}, err
	}
	defer a.leave()
	a.mu.Lock()
	defer a.mu.Unlock()
	resp := acp.ListSessionsResponse{Sessions: []acp.SessionInfo{}}
	for _, id := range a.order {
		s := a.sessions[id]
		if p.Cwd != nil && *p.Cwd != s.cwd {
			continue
		}
		info := acp.SessionInfo{SessionId: s.id, Cwd: s.cwd}
		for _, m := range s.history {
			if m.user {
				info.Title = acp.Ptr(truncate(m.text, 80))
				break
			}
		}
		resp.Sessions = append(resp.Sessions, info)
	}
	return resp, nil
}

func (a *agent) CloseSession(ctx context.Context, p acp.CloseSessionRequest) (acp.CloseSessionResponse, error) {
	if err := a.enter(); err != nil {
		return acp.CloseSessionResponse{}, err
	}
	defer a.leave()
	a.mu.Lock()
	defer a.mu.Unlock()
	s, err := a.lookup(p.SessionId)
	if err != nil {
		return acp.CloseSessionResponse{}, err
	}
	if s.turnCancel != nil {
		s.turnCancel()
	}
	delete(a.sessions, s.id)
	a.order = slices.DeleteFunc(a.order, func(id acp.SessionId) bool { return id == s.id })
	return acp.CloseSessionResponse{}, nil
}

func (a *agent) Cancel(ctx context.Context, p acp.CancelNotification) error {
	// acp-go-sdk has already cancelled the context of the session's prompt
	// in flight before it calls this. Cancelling s.turnCancel here as well
	// would race: the cancelled prompt may have answered and the client sent
	// its next prompt already, which would then be cancelled by mistake.
	return nil
}

func (a *agent) SetSessionMode(ctx context.Context, p acp.SetSessionModeRequest) (acp.SetSessionModeResponse, error) {
	if err := a.enter(); err != nil {
		return acp.SetSessionModeResponse{}, err
	}
	defer a.leave()
	opts, err := a.setValue(p.SessionId, configMode, string(p.ModeId), "modeId")
	if err != nil {
		return acp.SetSessionModeResponse{}, err
	}
	if err := a.notify(ctx, p.SessionId, modeUpdate(string(p.ModeId)), configUpdate(opts)); err != nil {
		return acp.SetSessionModeResponse{}, err
	}
	return acp.SetSessionModeResponse{}, nil
}

func (a *agent) SetSessionConfigOption(ctx context.Context, p acp.SetSessionConfigOptionRequest) (acp.SetSessionConfigOptionResponse, error) {
	if err := a.enter(); err != nil {
		return acp.SetSessionConfigOptionResponse{}, err
	}
	defer a.leave()
	if p.ValueId == nil {
		data := map[string]any{"error": "only select config options are supported"}
		if p.Boolean != nil {
			data["configId"] = string(p.Boolean.ConfigId)
		}
		return acp.SetSessionConfigOptionResponse{}, acp.NewInvalidParams(data)
	}
	id, value := string(p.ValueId.ConfigId), string(p.ValueId.Value)
	opts, err := a.setValue(p.ValueId.SessionId, id, value, "value")
	if err != nil {
		return acp.SetSessionConfigOptionResponse{}, err
	}
	updates := []acp.SessionUpdate{configUpdate(opts)}
	if id == configMode {
		updates = append(updates, modeUpdate(value))
	}
	if err := a.notify(ctx, p.ValueId.SessionId, updates...); err != nil {
		return acp.SetSessionConfigOptionResponse{}, err
	}
	return acp.SetSessionConfigOptionResponse{ConfigOptions: opts}, nil
}

// UnstableSetSessionModel implements the unstable session/set_model method: it
// sets the "model" config option.
func (a *agent) UnstableSetSessionModel(ctx context.Context, p acp.UnstableSetSessionModelRequest) (acp.UnstableSetSessionModelResponse, error) {
	if err := a.enter(); err != nil {
		return acp.UnstableSetSessionModelResponse{}, err
	}
	defer a.leave()
	opts, err := a.setValue(p.SessionId, configModel, string(p.ModelId), "modelId")
	if err != nil {
		return acp.UnstableSetSessionModelResponse{}, err
	}
	if err := a.notify(ctx, p.SessionId, configUpdate(opts)); err != nil {
		return acp.UnstableSetSessionModelResponse{}, err
	}
	return acp.UnstableSetSessionModelResponse{}, nil
}

// setValue validates and sets a config value and returns the session's new
// config options. field names the request field for error data.
func (a *agent) setValue(sid acp.SessionId, id, value, field string) ([]acp.SessionConfigOption, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, err := a.lookup(sid)
	if err != nil {
		return nil, err
	}
	d, ok := findConfigDef(id)
	if !ok {
		return nil, acp.NewInvalidParams(map[string]any{"configId": id, "error": "unknown config option"})
	}
	if !d.has(value) {
		return nil, acp.NewInvalidParams(map[string]any{field: value, "configId": id, "error": "unknown value"})
	}
	s.values[id] = value
	return s.configOptions(), nil
}

func (a *agent) notify(ctx context.Context, sid acp.SessionId, updates ...acp.SessionUpdate) error {
	for _, u := range updates {
		if err := a.conn.SessionUpdate(ctx, acp.SessionNotification{SessionId: sid, Update: u}); err != nil {
			return err
		}
	}
	return nil
}

func modeUpdate(mode string) acp.SessionUpdate {
	return acp.SessionUpdate{CurrentModeUpdate: &acp.SessionCurrentModeUpdate{CurrentModeId: acp.SessionModeId(mode)}}
}

func configUpdate(opts []acp.SessionConfigOption) acp.SessionUpdate {
	return acp.SessionUpdate{ConfigOptionUpdate: &acp.SessionConfigOptionUpdate{ConfigOptions: opts}}
}

// modeState returns the session's modes; the caller must hold a.mu.
func (s *session) modeState() *acp.SessionModeState {
	return &acp.SessionModeState{
		CurrentModeId: acp.SessionModeId(s.values[configMode]),
		AvailableModes: []acp.SessionMode{
			{Id: "normal", Name: "Normal"},
			{Id: "plan", Name: "Plan"},
		},
	}
}

// configOptions returns the session's config options; the caller must hold
// a.mu.
func (s *session) configOptions() []acp.SessionConfigOption {
	opts := make([]acp.SessionConfigOption, 0, len(configDefs))
	for _, d := range configDefs {
		values := make(acp.SessionConfigSelectOptionsUngrouped, 0, len(d.options))
		for _, v := range d.options {
			values = append(values, acp.SessionConfigSelectOption{Name: v.name, Value: acp.SessionConfigValueId(v.value)})
		}
		opts = append(opts, acp.SessionConfigOption{Select: &acp.SessionConfigOptionSelect{
			Id:           acp.SessionConfigId(d.id),
			Name:         d.name,
			Category:     acp.Ptr(d.category),
			CurrentValue: acp.SessionConfigValueId(s.values[d.id]),
			Options:      acp.SessionConfigSelectOptions{Ungrouped: &values},
			Type:         "select",
		}})
	}
	return opts
}
