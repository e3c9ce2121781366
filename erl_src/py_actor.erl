%% A Python actor: an Erlang process (this proxy) bound to one Python
%% coroutine, or `erlang.GenServer`, running on a loop of the pool
%% (docs/actors.md).
%%
%% The proxy is a proc_lib process with sys support, so it can sit in a
%% supervision tree. Whatever is sent to it goes to the coroutine's
%% mailbox (`await erlang.receive()`), in order, with flow control: at
%% most `window` messages travel ahead of what Python has consumed (Python
%% acknowledges them, `actor_ack`); the rest wait in this process's own
%% mailbox, where process_info/2 shows them, not in the port.
%%
%% The actor is a task of the loop whose caller is the proxy: its pending
%% entry makes the worker route the actor's end (`{Ref, Result}`) and the
%% port's exit (`{python_exit, Status}`) here, and the worker's monitor of
%% its callers cancels the coroutine when the proxy dies (killed, or its
%% linked parent exited). The proxy does not trap exits, so it dies at
%% once, like any process.
%%
%% `gen_server:call/3` works against the actor: a `{'$gen_call', From,
%% Request}` goes to Python as `{'$gen_call', Token, Request}` (a From
%% has no Python form), and Python's `{actor_reply, Id, Token, Reply}`
%% comes back here and is answered with gen_server:reply/2. Only Froms
%% the proxy has seen can be answered, at most ?MAX_CALLS of them.
-module(py_actor).

%% API.
-export([start_link/4]).
-export([start/4]).
-export([child_spec/1]).

%% Internal exports: proc_lib and sys.
-export([init/6]).
-export([system_continue/3]).
-export([system_terminate/4]).
-export([system_get_state/1]).
-export([system_replace_state/2]).
-export([system_code_change/4]).

-type name() :: {local, atom()} | {global, term()} | {via, module(), term()}.
-type opts() :: #{loop => pos_integer(),
                  kwargs => py_event_loop:kwargs(),
                  name => name(),
                  window => pos_integer(),
                  max_backlog => pos_integer(),
                  timeout => timeout(),
                  step_timeout => timeout()}.
-type spec() :: #{module := py_event_loop:py_name(),
                  function := py_event_loop:py_name(),
                  args => list(),
                  opts => opts(),
                  id => term(),
                  restart => supervisor:restart(),
                  shutdown => supervisor:shutdown()}.
-type start_result() :: {ok, pid()} | {error, term()}.
-export_type([opts/0, spec/0, name/0]).

-record(state, {
    ref :: reference(),
    loop :: pyport_calls:loop(),
    max_packet :: pos_integer(),
    window :: pos_integer(),
    %% Mailbox messages allowed to wait for credit (exit beyond).
    max_backlog :: pos_integer(),
    %% Messages the proxy may still send ahead of Python's consumption.
    credit :: non_neg_integer(),
    %% Packets taken from the mailbox that a busy port did not take yet,
    %% and the timer that retries them.
    unsent = [] :: [pyport_wire:packet()],
    retry :: reference() | undefined,
    %% gen_server:call Froms awaiting Python's reply, by token.
    calls = #{} :: #{pos_integer() => gen_server:from()},
    next_call = 1 :: pos_integer(),
    oldest_call = 1 :: pos_integer()
}).

-define(DEFAULT_WINDOW, 128).
-define(MAX_WINDOW, 65536).
-define(START_TIMEOUT, 5000).
%% The longest one step of an actor (its code between two awaits) may hold
%% its loop by default: the watchdog ends it with `timeout` then.
-define(STEP_TIMEOUT, 5000).
%% How many mailbox messages go to the port in one write.
-define(BATCH, 64).
%% How soon packets a busy port refused are tried again.
-define(RETRY_MS, 5).
%% Calls Python has not answered, kept at most (the oldest are forgotten:
%% their callers have long given up).
-define(MAX_CALLS, 65536).
%% How often a proxy without credit looks at its backlog.
-define(BACKLOG_CHECK_MS, 100).

%% API.

%% Starts the actor `Module.Func(*Args, **kwargs)` linked to the caller;
%% returns once Python has started it (a GenServer: once its `init` has
%% returned). Options: `loop` (pin a loop; default: the proxy's pid picks
%% one, as for tasks), `kwargs`, `name` (registered like a gen_server's),
%% `window` (messages ahead of Python, default 128), `max_backlog`
%% (messages waiting in the proxy's mailbox beyond the window before it
%% exits `{actor_backlog_full, Max}`; default the `actor_max_backlog`
%% setting, 100000), `timeout` (for the start, default 5000 ms),
%% `step_timeout` (the longest one step of the actor may hold its loop
%% before the watchdog ends it with `timeout`, default 5000 ms).
-spec start_link(py_event_loop:py_name(), py_event_loop:py_name(), list(), opts())
    -> start_result().
start_link(Module, Func, Args, Opts) ->
    start(link, Module, Func, Args, Opts).

%% start_link/4 without the link.
-spec start(py_event_loop:py_name(), py_event_loop:py_name(), list(), opts())
    -> start_result().
start(Module, Func, Args, Opts) ->
    start(nolink, Module, Func, Args, Opts).

%% A supervisor child specification of an actor started with start_link/4.
-spec child_spec(spec()) -> supervisor:child_spec().
child_spec(#{module := Module, function := Func} = Spec) ->
    Args = maps:get(args, Spec, []),
    Opts = maps:get(opts, Spec, #{}),
    #{id => maps:get(id, Spec, {?MODULE, Module, Func}),
      start => {?MODULE, start_link, [Module, Func, Args, Opts]},
      restart => maps:get(restart, Spec, permanent),
      shutdown => maps:get(shutdown, Spec, 5000),
      type => worker,
      modules => [?MODULE]};
child_spec(Spec) ->
    error({badarg, {spec, Spec}}).

%% proc_lib and sys.

-spec init(pid(), py_event_loop:py_name(), py_event_loop:py_name(), list(),
           py_event_loop:kwargs(), map()) -> no_return().
init(Parent, Module, Func, Args, Kwargs,
     #{window := Window, timeout := Timeout, step_timeout := Step} = Opts) ->
    case register_name(maps:get(name, Opts, undefined)) of
        ok ->
            Deadline = pyport_calls:deadline(Timeout),
            Request = {actor, Module, Func, Args, Kwargs,
                       maps:merge(#{window => Window}, step_opts(Step))},
            case pyport_calls:submit(loop(Opts), Request, Deadline) of
                {ok, Ref, Call} ->
                    await_started(Parent, Ref, pyport_calls:loop(Call), Window,
                                  maps:get(max_backlog, Opts), Deadline);
                {error, Reason} -> fail(Reason)
            end;
        {error, _} = Error ->
            proc_lib:init_ack(Error),
            exit(normal)
    end.

-spec system_continue(pid(), [sys:dbg_opt()], #state{}) -> no_return().
system_continue(Parent, Debug, State) ->
    loop(State, Parent, Debug).

-spec system_terminate(term(), pid(), [sys:dbg_opt()], #state{}) -> no_return().
system_terminate(Reason, _Parent, _Debug, _State) ->
    %% The worker sees this process go and cancels the coroutine.
    exit(Reason).

-spec system_get_state(#state{}) -> {ok, #state{}}.
system_get_state(State) ->
    {ok, State}.

-spec system_replace_state(fun((#state{}) -> #state{}), #state{})
    -> {ok, #state{}, #state{}}.
system_replace_state(Fun, State) ->
    New = Fun(State),
    {ok, New, New}.

-spec system_code_change(#state{}, module(), term(), term()) -> {ok, #state{}}.
system_code_change(State, _Module, _OldVsn, _Extra) ->
    {ok, State}.

%% Internal.

start(Link, Module, Func, Args, Opts) ->
    pyport_task:check_call(Module, Func, Args, #{}),
    Checked = check_opts(Opts),
    Kwargs = maps:get(kwargs, Checked, #{}),
    InitArgs = [self(), Module, Func, Args, Kwargs, Checked],
    %% init/6 bounds its own wait by the start timeout.
    case Link of
        link -> proc_lib:start_link(?MODULE, init, InitArgs, infinity);
        nolink -> proc_lib:start(?MODULE, init, InitArgs, infinity)
    end.

%% Bad options are the caller's error, raised at its site.
check_opts(Opts) when is_map(Opts) ->
    maps:foreach(fun check_opt/2, Opts),
    maps:merge(#{window => ?DEFAULT_WINDOW, timeout => ?START_TIMEOUT,
                 step_timeout => ?STEP_TIMEOUT,
                 max_backlog => pyport_config:actor_max_backlog()}, Opts);
check_opts(Opts) ->
    error({badarg, {options, Opts}}).

check_opt(loop, I) when is_integer(I), I > 0 -> ok;
check_opt(kwargs, K) when is_map(K) -> ok;
check_opt(name, {local, N}) when is_atom(N) -> ok;
check_opt(name, {global, _}) -> ok;
check_opt(name, {via, M, _}) when is_atom(M) -> ok;
check_opt(window, W) when is_integer(W), W > 0, W =< ?MAX_WINDOW -> ok;
check_opt(max_backlog, N) when is_integer(N), N > 0 -> ok;
check_opt(timeout, T) -> _ = pyport_task:check_timeout(T), ok;
check_opt(step_timeout, infinity) -> ok;
check_opt(step_timeout, T) when is_integer(T), T >= 0 -> ok;
check_opt(Key, Value) -> error({badarg, {option, Key, Value}}).

%% The actor_start option of a step_timeout: none for infinity.
step_opts(infinity) -> #{};
step_opts(Ms) -> #{step_ms => Ms}.

register_name(undefined) ->
    ok;
register_name({local, Name}) ->
    try erlang:register(Name, self()) of
        true -> ok
    catch
        error:badarg -> {error, {already_started, whereis(Name)}}
    end;
register_name({global, Name}) ->
    case global:register_name(Name, self()) of
        yes -> ok;
        no -> {error, {already_started, global:whereis_name(Name)}}
    end;
register_name({via, Module, Name}) ->
    case Module:register_name(Name, self()) of
        yes -> ok;
        no -> {error, {already_started, Module:whereis_name(Name)}}
    end.

loop(#{loop := Index}) ->
    Index;
loop(_) ->
    case py_event_loop_pool:get_loop() of
        {ok, {pyport_loop, Index}} -> Index;
        %% No pool: submitting says loop_unavailable.
        {error, not_started} -> 1
    end.

%% Python answers `actor_started` once the actor runs (a GenServer: after
%% its init), or the actor's end if it could not start. Messages sent to
%% a registered name meanwhile wait in the mailbox.
await_started(Parent, Ref, Loop, Window, MaxBacklog, Deadline) ->
    receive
        {py_actor, Ref, started} ->
            proc_lib:init_ack({ok, self()}),
            loop(#state{ref = Ref, loop = Loop, max_packet = pyport_calls:max_packet(Loop),
                        window = Window, credit = Window,
                        max_backlog = MaxBacklog}, Parent, []);
        {Ref, {ok, _}} ->
            %% Cannot come first from a well-behaved port; an actor that
            %% is already done still started.
            proc_lib:init_ack({ok, self()}),
            exit(normal);
        {Ref, {error, Reason}} ->
            fail(Reason);
        {'DOWN', Ref, process, _, Reason} ->
            fail({worker_down, Reason})
    after pyport_calls:after_ms(Deadline) ->
        %% Exiting makes the worker cancel the actor.
        fail(timeout)
    end.

-spec fail(term()) -> no_return().
fail(Reason) ->
    proc_lib:init_ack({error, Reason}),
    exit(normal).

%% With credit and no packets waiting for the port, the next message
%% whatever it is; otherwise only what the proxy itself needs, so that
%% the rest stays in the mailbox, up to max_backlog messages: beyond, the
%% proxy exits `{actor_backlog_full, Max}` (its parent and monitors see
%% why; the worker cancels the actor) rather than hold an unbounded
%% mailbox that each of its selective receives would scan.
loop(#state{credit = Credit, unsent = []} = State, Parent, Debug) when Credit > 0 ->
    receive
        Msg -> handle(Msg, State, Parent, Debug)
    end;
loop(#state{ref = Ref, retry = Retry, max_backlog = MaxBacklog} = State, Parent, Debug) ->
    case process_info(self(), message_queue_len) of
        {message_queue_len, N} when N > MaxBacklog -> exit({actor_backlog_full, MaxBacklog});
        _ -> ok
    end,
    receive
        {py_actor, Ref, _} = Msg -> handle(Msg, State, Parent, Debug);
        {Ref, _} = Msg -> handle(Msg, State, Parent, Debug);
        {'DOWN', Ref, process, _, _} = Msg -> handle(Msg, State, Parent, Debug);
        {system, _, _} = Msg -> handle(Msg, State, Parent, Debug);
        {timeout, Retry, py_actor_retry} ->
            loop(send(State#state{retry = undefined}), Parent, Debug)
    after ?BACKLOG_CHECK_MS ->
        loop(State, Parent, Debug)
    end.

handle({py_actor, Ref, What}, #state{ref = Ref} = State, Parent, Debug) ->
    loop(from_python(What, State), Parent, Debug);
handle({Ref, Result}, #state{ref = Ref}, _Parent, _Debug) ->
    exit(exit_reason(Result));
handle({'DOWN', Ref, process, _, Reason}, #state{ref = Ref}, _Parent, _Debug) ->
    %% The worker went without failing its callers first (it always
    %% does when the port exits, so this is the worker itself).
    exit({worker_down, Reason});
handle({system, From, Request}, State, Parent, Debug) ->
    sys:handle_system_msg(Request, From, Parent, ?MODULE, Debug, State);
handle(Msg, State, Parent, Debug) ->
    {Packets, Next, State1} = batch([Msg], [], State),
    State2 = send(State1#state{unsent = lists:reverse(Packets)}),
    case Next of
        none -> loop(State2, Parent, Debug);
        {control, Control} -> handle(Control, State2, Parent, Debug)
    end.

%% Takes mailbox messages while there is credit (at most ?BATCH), so that a
%% flood costs one write per batch; stops at the first message the proxy
%% handles itself, which comes next.
batch([], Acc, #state{credit = Credit} = State)
  when Credit =:= 0; length(Acc) >= ?BATCH ->
    {Acc, none, State};
batch([], Acc, #state{ref = Ref} = State) ->
    receive
        {py_actor, Ref, _} = Control -> {Acc, {control, Control}, State};
        {Ref, _} = Control -> {Acc, {control, Control}, State};
        {'DOWN', Ref, process, _, _} = Control -> {Acc, {control, Control}, State};
        {system, _, _} = Control -> {Acc, {control, Control}, State};
        Msg -> batch([Msg], Acc, State)
    after 0 ->
        {Acc, none, State}
    end;
batch([Msg], Acc, #state{ref = Ref, credit = Credit, max_packet = Max} = State) ->
    {Forwarded, State1} = to_python(Msg, State),
    Packet = pyport_wire:actor_msg(Ref, Forwarded),
    case pyport_wire:payload_size(Packet) of
        Size when Size > Max ->
            logger:warning("py_actor ~p: a message of ~b bytes is over the loop's "
                           "max_packet (~b); dropped", [self(), Size, Max]),
            batch([], Acc, State1);
        _ ->
            batch([], [Packet | Acc], State1#state{credit = Credit - 1})
    end.

%% A From has no Python form: Python gets a token that names it here.
to_python({'$gen_call', From, Request},
          #state{calls = Calls, next_call = Token} = State) ->
    State1 = forget_calls(State#state{calls = Calls#{Token => From},
                                      next_call = Token + 1}),
    {{'$gen_call', Token, Request}, State1};
to_python(Msg, State) ->
    {Msg, State}.

forget_calls(#state{calls = Calls, oldest_call = Oldest} = State)
  when map_size(Calls) > ?MAX_CALLS ->
    forget_calls(State#state{calls = maps:remove(Oldest, Calls),
                             oldest_call = Oldest + 1});
forget_calls(State) ->
    State.

from_python({ack, N}, #state{credit = Credit, window = Window} = State) ->
    State#state{credit = min(Window, Credit + N)};
from_python({reply, Token, Reply}, #state{calls = Calls} = State) ->
    case maps:take(Token, Calls) of
        {From, Calls1} ->
            gen_server:reply(From, Reply),
            State#state{calls = Calls1};
        error ->
            State
    end;
from_python(started, State) ->
    State.

send(#state{unsent = []} = State) ->
    State;
send(#state{loop = Loop, unsent = Packets} = State) ->
    %% Retried here, not queued by the worker: the proxy's packets must
    %% reach Python in order, after one another.
    case pyport_calls:try_write(Loop, Packets) of
        ok ->
            State#state{unsent = []};
        busy ->
            TRef = erlang:start_timer(?RETRY_MS, self(), py_actor_retry),
            State#state{retry = TRef};
        closed ->
            %% The port is gone; its exit reaches this process next.
            State#state{unsent = []}
    end.

exit_reason({ok, _}) -> normal;
exit_reason({error, {python, _, _, _} = Python}) -> Python;
exit_reason({error, {python_exit, _} = Exit}) -> Exit;
exit_reason({error, Reason}) -> Reason.
