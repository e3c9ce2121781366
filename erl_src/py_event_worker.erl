%% Owns one pyport OS process (one Python interpreter, one asyncio loop).
%%
%% Callers write task packets to the port themselves (see py_event_task);
%% this process decodes what the port sends, routes each result to the
%% caller's reply alias, forwards Python log records to the OTP logger,
%% cancels the tasks of callers that die, and, when the port exits, fails
%% every pending task at once and stops so that its supervisor starts a
%% fresh port.
-module(py_event_worker).
-behaviour(gen_server).

-include("py_event_loop.hrl").

%% API.
-export([start_link/1]).
-export([executable/0]).
-export([port_args/1]).

%% gen_server.
-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).
-export([handle_info/2]).
-export([terminate/2]).

-record(state, {
    index :: pos_integer(),
    port :: port() | undefined,
    pending :: ets:tid(),
    monitored :: ets:tid(),
    os_pid :: integer() | undefined,
    cancel_grace_ms :: non_neg_integer(),
    %% The one timer armed for the earliest cancelled-task deadline:
    %% {TimerRef, KillAt} (monotonic milliseconds).
    overdue_timer :: {reference(), integer()} | undefined,
    %% Set when this worker killed its port on purpose: what callers are
    %% told instead of the bare exit status.
    killed :: undefined | unresponsive
}).

-type config() :: #{python_path := [file:filename_all()],
                    max_packet := pos_integer(),
                    max_memory_mb := pos_integer() | infinity,
                    max_pending := pos_integer() | infinity,
                    cancel_grace_ms := non_neg_integer(),
                    start_timeout := timeout()}.
-export_type([config/0]).

%% How long a stopping worker lets Python cancel its tasks and exit
%% before it closes the port (EOF then ends the process anyway).
-define(STOP_GRACE_MS, 2000).

%% How long Python has to answer a cancel Erlang sent (deadline passed,
%% await timed out, caller died) before the worker kills the port.
-define(DEFAULT_CANCEL_GRACE_MS, 2000).

%% API.

-spec start_link(pos_integer()) -> {ok, pid()} | ignore | {error, term()}.
start_link(Index) ->
    gen_server:start_link(?MODULE, Index, []).

%% The `executable` application variable replaces the port program; `make
%% bench` points it at `priv/pyport-echo` to measure the floor through the
%% very same Erlang side.
-spec executable() -> file:filename().
executable() ->
    case application:get_env(pyport, executable) of
        {ok, Exe} -> Exe;
        undefined -> default_executable()
    end.

default_executable() ->
    case code:priv_dir(pyport) of
        {error, bad_name} ->
            %% Not loaded as an application (e.g. an escript): the beams'
            %% directory still sits beside priv.
            Ebin = filename:dirname(code:which(?MODULE)),
            filename:join([Ebin, "..", "priv", "pyport"]);
        Priv ->
            filename:join(Priv, "pyport")
    end.

-spec port_args(#{max_packet := pos_integer(),
                  python_path := [file:filename_all()],
                  max_memory_mb => pos_integer() | infinity,
                  atom() => term()}) -> [string()].
port_args(#{max_packet := MaxPacket, python_path := PythonPath} = Config) ->
    ["port", "--max-packet", integer_to_list(MaxPacket)]
        ++ case maps:get(max_memory_mb, Config, infinity) of
               infinity -> [];
               MiB -> ["--max-memory-mb", integer_to_list(MiB)]
           end
        ++ lists:append([["--path", to_list(P)] || P <- PythonPath]).

%% gen_server.

-spec init(pos_integer()) -> {ok, #state{}} | {stop, term()}.
init(Index) ->
    %% Port exits must arrive as messages, and a shutdown from the
    %% supervisor must run terminate/2 so that Python gets its `stop`.
    process_flag(trap_exit, true),
    case config() of
        {ok, Config} -> start_port(Index, Config);
        {error, Reason} -> {stop, Reason}
    end.

-spec handle_call(term(), gen_server:from(), #state{})
    -> {reply, {error, {unknown_call, term()}}, #state{}}.
handle_call(Request, _From, State) ->
    {reply, {error, {unknown_call, Request}}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast({cancelled, KillAt}, State) when is_integer(KillAt) ->
    %% A caller gave up on a task and asked Python to cancel it; Python
    %% has until KillAt to answer (see overdue_check/1).
    {noreply, arm_overdue(KillAt, State)};
handle_cast({monitor, Pid}, #state{monitored = Monitored} = State)
  when is_pid(Pid) ->
    %% Callers ask before their first task, and may ask twice in a race.
    case ets:member(Monitored, Pid) of
        true -> ok;
        false -> true = ets:insert(Monitored, {Pid, erlang:monitor(process, Pid)})
    end,
    {noreply, State};
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{})
    -> {noreply, #state{}} | {stop, {python_exit, term()}, #state{}}.
handle_info({Port, {data, Bin}}, #state{port = Port} = State) ->
    handle_packet(decode(Bin), State),
    {noreply, State};
handle_info({Port, {exit_status, Status}}, #state{port = Port} = State) ->
    port_exited(Status, State);
handle_info({'EXIT', Port, Reason}, #state{port = Port} = State) ->
    %% Without an exit status first: the port driver itself failed.
    port_exited(Reason, State);
handle_info({'DOWN', MRef, process, Pid, _},
            #state{port = Port, pending = Pending, monitored = Monitored,
                   cancel_grace_ms = Grace} = State) ->
    true = ets:delete_object(Monitored, {Pid, MRef}),
    Refs = ets:select(Pending, [{{'$1', Pid}, [], ['$1']}]),
    KillAt = erlang:monotonic_time(millisecond) + Grace,
    lists:foreach(
      fun(Ref) ->
              %% Kept as cancelled until Python answers, so that a task
              %% that ignores the cancel is noticed (overdue_check/1).
              true = ets:update_element(Pending, Ref, {2, {cancelled, KillAt}}),
              send_packet(Port, {cancel, Ref})
      end, Refs),
    {noreply, case Refs of
                  [] -> State;
                  _ -> arm_overdue(KillAt, State)
              end};
handle_info({timeout, TRef, overdue_check},
            #state{overdue_timer = {TRef, _}} = State) ->
    overdue_check(State#state{overdue_timer = undefined});
handle_info(_Info, State) ->
    {noreply, State}.

-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{port = undefined}) ->
    ok;
terminate(_Reason, #state{port = Port} = State) ->
    %% Python cancels its tasks on `stop`; routing the replies that come
    %% back while it does lets callers see `cancelled`, not a dead worker.
    case send_packet(Port, stop) of
        ok -> drain(State, erlang:monotonic_time(millisecond) + ?STOP_GRACE_MS);
        closed -> ok
    end.

%% Internal.

config() ->
    Env = fun(Key, Default) -> application:get_env(pyport, Key, Default) end,
    Config = #{python_path => Env(python_path, []),
               max_packet => Env(max_packet, 67108864),
               max_memory_mb => Env(max_memory_mb, infinity),
               max_pending => Env(max_pending, infinity),
               cancel_grace_ms => Env(cancel_grace_ms, ?DEFAULT_CANCEL_GRACE_MS),
               start_timeout => Env(start_timeout, 10000)},
    case [{Key, Value} || {Key, Value} <- maps:to_list(Config),
                          not valid_config(Key, Value)] of
        [] -> {ok, Config};
        [{Key, Value} | _] -> {error, {bad_config, {Key, Value}}}
    end.

valid_config(python_path, Paths) ->
    is_list(Paths) andalso lists:all(fun is_path/1, Paths);
valid_config(max_packet, N) ->
    is_integer(N) andalso N > 0;
valid_config(max_memory_mb, N) ->
    N =:= infinity orelse (is_integer(N) andalso N > 0);
valid_config(max_pending, N) ->
    N =:= infinity orelse (is_integer(N) andalso N > 0);
valid_config(cancel_grace_ms, T) ->
    is_integer(T) andalso T >= 0;
valid_config(start_timeout, T) ->
    T =:= infinity orelse (is_integer(T) andalso T > 0).

is_path(P) when is_binary(P) -> true;
is_path(P) -> io_lib:char_list(P) andalso P =/= [].

to_list(P) when is_binary(P) -> unicode:characters_to_list(P);
to_list(P) -> P.

-spec start_port(pos_integer(), config()) -> {ok, #state{}} | {stop, term()}.
start_port(Index, #{start_timeout := StartTimeout} = Config) ->
    Exe = executable(),
    Options = [{packet, 4}, binary, nouse_stdio, exit_status,
               {args, port_args(Config)}],
    try open_port({spawn_executable, Exe}, Options) of
        Port ->
            case await_ready(Port, Index, deadline(StartTimeout)) of
                {ok, Info} ->
                    registered(Index, Port, Info, Config);
                {error, Reason} ->
                    close(Port),
                    {stop, {port_start_failed, Reason}}
            end
    catch
        error:Reason ->
            {stop, {port_start_failed, {open_port, Reason, Exe}}}
    end.

deadline(infinity) -> infinity;
deadline(Ms) -> erlang:monotonic_time(millisecond) + Ms.

remaining(infinity) -> infinity;
remaining(Deadline) ->
    max(0, Deadline - erlang:monotonic_time(millisecond)).

await_ready(Port, Index, Deadline) ->
    receive
        {Port, {data, Bin}} ->
            case decode(Bin) of
                {ready, #{protocol := 1} = Info} ->
                    {ok, Info};
                {ready, Info} ->
                    {error, {protocol_mismatch, Info}};
                {log, _, _, _} = Log ->
                    %% Start-up diagnostics are worth keeping.
                    log(Log, Index),
                    await_ready(Port, Index, Deadline);
                Other ->
                    {error, {unexpected_packet, Other}}
            end;
        {Port, {exit_status, Status}} ->
            {error, {exit_status, Status}};
        {'EXIT', Port, Reason} ->
            {error, {port_exit, Reason}}
    after remaining(Deadline) ->
        {error, no_ready_packet_in_time}
    end.

registered(Index, Port, Info, #{max_pending := MaxPending,
                                max_packet := MaxPacket,
                                cancel_grace_ms := Grace}) ->
    Pending = ets:new(py_event_pending,
                      [set, public, {write_concurrency, true}]),
    Monitored = ets:new(py_event_monitored,
                        [set, public, {read_concurrency, true}]),
    OsPid = case Info of
                #{os_pid := P} when is_integer(P) -> P;
                _ -> port_os_pid(Port)
            end,
    Loop = #py_loop{index = Index, worker = self(), port = Port,
                    pending = Pending, monitored = Monitored,
                    max_pending = MaxPending, max_packet = MaxPacket,
                    cancel_grace_ms = Grace, os_pid = OsPid, info = Info},
    ok = py_event_loop_pool:register_loop(Index, Loop),
    {ok, #state{index = Index, port = Port, pending = Pending,
                monitored = Monitored, os_pid = OsPid,
                cancel_grace_ms = Grace}}.

port_os_pid(Port) ->
    case erlang:port_info(Port, os_pid) of
        {os_pid, P} -> P;
        undefined -> undefined
    end.

decode(Bin) ->
    try
        binary_to_term(Bin)
    catch
        error:badarg -> {undecodable, Bin}
    end.

handle_packet({result, Ref, Result}, #state{pending = Pending}) ->
    %% {cancelled, _}: the caller timed out or died and Python has now
    %% answered the cancel; no entry: a spawned task or a lost race. Either
    %% way the reply has nowhere to go.
    case ets:take(Pending, Ref) of
        [{Ref, Caller}] when is_pid(Caller) -> Ref ! {Ref, Result}, ok;
        [{Ref, {cancelled, _}}] -> ok;
        [] -> ok
    end;
handle_packet({log, _, _, _} = Log, #state{index = Index}) ->
    log(Log, Index);
handle_packet({send, Dest, Msg}, _State) when is_pid(Dest);
                                              is_reference(Dest) ->
    _ = erlang:send(Dest, Msg),
    ok;
handle_packet({error, {bad_packet, Reason}}, #state{index = Index}) ->
    logger:warning("pyport loop ~b could not decode a packet (bad_packet): ~tp",
                   [Index, Reason],
                   #{pyport_loop => Index});
handle_packet({error, {unknown_message, Term}}, #state{index = Index}) ->
    logger:warning("pyport loop ~b did not understand a message "
                   "(unknown_message): ~tp",
                   [Index, Term], #{pyport_loop => Index});
handle_packet(Other, #state{index = Index}) ->
    logger:warning("pyport loop ~b sent an unexpected packet: ~tp",
                   [Index, Other], #{pyport_loop => Index}).

log({log, Level, Logger, Message}, Index) ->
    Meta = #{pyport_loop => Index, python_logger => Logger},
    case unicode:characters_to_binary(Message) of
        Text when is_binary(Text) ->
            logger:log(level(Level), "~ts", [Text], Meta);
        _ ->
            logger:log(level(Level), "~tp", [Message], Meta)
    end.

%% Python's level names, and anything unexpected, mapped onto the OTP
%% logger's levels.
level(Level) when is_binary(Level) ->
    level(string:lowercase(Level));
level(Level) when Level =:= emergency; Level =:= alert; Level =:= critical;
                  Level =:= error; Level =:= warning; Level =:= notice;
                  Level =:= info; Level =:= debug ->
    Level;
level(<<"critical">>) -> critical;
level(<<"fatal">>) -> critical;
level(<<"error">>) -> error;
level(<<"warning">>) -> warning;
level(<<"warn">>) -> warning;
level(<<"info">>) -> info;
level(<<"debug">>) -> debug;
level(fatal) -> critical;
level(warn) -> warning;
level(_) -> notice.

port_exited(ExitStatus, #state{index = Index, pending = Pending,
                               os_pid = OsPid, killed = Killed} = State) ->
    %% The port's own children (Python subprocesses) share its process
    %% group; a port killed by a signal could not take them along.
    kill_process_group(OsPid),
    Status = case Killed of
                 undefined -> ExitStatus;
                 Why -> {killed, Why}
             end,
    Failed = [Ref || {Ref, Caller} <- ets:tab2list(Pending), is_pid(Caller)],
    true = ets:delete_all_objects(Pending),
    lists:foreach(fun(Ref) ->
                          Ref ! {Ref, {error, {python_exit, Status}}}
                  end, Failed),
    logger:error("pyport loop ~b (OS pid ~tp) exited with ~tp; "
                 "~b pending task(s) failed",
                 [Index, OsPid, Status, length(Failed)],
                 #{pyport_loop => Index}),
    {stop, {python_exit, Status}, State#state{port = undefined}}.

%% One timer for the earliest deadline: cancels come in deadline order
%% (now + the same grace), so this rarely re-arms.
arm_overdue(KillAt, #state{overdue_timer = {_, At}} = State) when At =< KillAt ->
    State;
arm_overdue(KillAt, #state{overdue_timer = Timer} = State) ->
    _ = case Timer of
            {TRef, _} -> erlang:cancel_timer(TRef, [{async, true}, {info, false}]);
            undefined -> ok
        end,
    TRef2 = erlang:start_timer(KillAt, self(), overdue_check, [{abs, true}]),
    State#state{overdue_timer = {TRef2, KillAt}}.

%% A task Erlang cancelled (deadline passed, await timed out, caller died)
%% must be answered by Python within cancel_grace_ms. One that is not means
%% Python ignores the cancel, spins, or is stuck in a C call: the port is
%% killed, its callers get {python_exit, {killed, unresponsive}}, and the
%% supervisor starts a fresh one.
overdue_check(#state{pending = Pending, index = Index, os_pid = OsPid,
                     cancel_grace_ms = Grace} = State) ->
    KillAts = ets:select(Pending, [{{'_', {cancelled, '$1'}}, [], ['$1']}]),
    Now = erlang:monotonic_time(millisecond),
    case [At || At <- KillAts, At =< Now] of
        [] when KillAts =:= [] ->
            {noreply, State};
        [] ->
            {noreply, arm_overdue(lists:min(KillAts), State)};
        Overdue ->
            logger:error("pyport loop ~b (OS pid ~tp): ~b cancelled task(s) not "
                         "finished ~b ms after the cancel (Python ignores "
                         "cancellation or is stuck); killing the port",
                         [Index, OsPid, length(Overdue), Grace],
                         #{pyport_loop => Index}),
            kill_os_process(OsPid),
            %% The exit status arrives next and fails the other callers.
            {noreply, State#state{killed = unresponsive}}
    end.

kill_os_process(OsPid) when is_integer(OsPid) ->
    %% The whole group when the port leads one (its children go too).
    %% (`env kill`: the external kill(1), which takes `--`; dash's
    %% built-in does not.)
    Pid = integer_to_list(OsPid),
    _ = os:cmd("env kill -KILL -- -" ++ Pid ++ " 2>/dev/null || "
               "env kill -KILL " ++ Pid ++ " 2>/dev/null"),
    ok;
kill_os_process(_) ->
    ok.

%% SIGKILLs what is left of the exited port's process group (the port
%% makes itself a group leader with setsid, so the group id is its pid).
%% Nothing is there after a clean exit: the port kills its group itself.
kill_process_group(OsPid) when is_integer(OsPid) ->
    _ = os:cmd("env kill -KILL -- -" ++ integer_to_list(OsPid) ++ " 2>/dev/null"),
    ok;
kill_process_group(_) ->
    ok.

send_packet(Port, Term) ->
    try erlang:port_command(Port, term_to_binary(Term)) of
        true -> ok
    catch
        error:badarg -> closed
    end.

drain(#state{port = Port} = State, Deadline) ->
    receive
        {Port, {data, Bin}} ->
            handle_packet(decode(Bin), State),
            drain(State, Deadline);
        {Port, {exit_status, _}} ->
            ok;
        {'EXIT', Port, _} ->
            ok
    after remaining(Deadline) ->
        close(Port)
    end.

close(Port) ->
    try port_close(Port) of
        true -> ok
    catch
        error:badarg -> ok
    end,
    %% A closed port's last messages would otherwise sit in the mailbox.
    receive
        {'EXIT', Port, _} -> ok
    after 0 -> ok
    end.
