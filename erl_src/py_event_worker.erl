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
    os_pid :: integer() | undefined
}).

-type config() :: #{python_path := [file:filename_all()],
                    max_packet := pos_integer(),
                    max_memory_mb := pos_integer() | infinity,
                    max_pending := pos_integer() | infinity,
                    start_timeout := timeout()}.
-export_type([config/0]).

%% How long a stopping worker lets Python cancel its tasks and exit
%% before it closes the port (EOF then ends the process anyway).
-define(STOP_GRACE_MS, 2000).

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
            #state{port = Port, pending = Pending,
                   monitored = Monitored} = State) ->
    true = ets:delete_object(Monitored, {Pid, MRef}),
    Refs = ets:select(Pending, [{{'$1', Pid}, [], ['$1']}]),
    lists:foreach(
      fun(Ref) ->
              true = ets:delete(Pending, Ref),
              send_packet(Port, {cancel, Ref})
      end, Refs),
    {noreply, State};
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
                                max_packet := MaxPacket}) ->
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
                    os_pid = OsPid, info = Info},
    ok = py_event_loop_pool:register_loop(Index, Loop),
    {ok, #state{index = Index, port = Port, pending = Pending,
                monitored = Monitored, os_pid = OsPid}}.

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
    %% No entry: the caller timed out or died and the task was cancelled;
    %% the reply has nowhere to go.
    case ets:take(Pending, Ref) of
        [{Ref, _Caller}] -> Ref ! {Ref, Result}, ok;
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

port_exited(Status, #state{index = Index, pending = Pending,
                           os_pid = OsPid} = State) ->
    Failed = ets:tab2list(Pending),
    true = ets:delete_all_objects(Pending),
    lists:foreach(fun({Ref, _Caller}) ->
                          Ref ! {Ref, {error, {python_exit, Status}}}
                  end, Failed),
    logger:error("pyport loop ~b (OS pid ~tp) exited with ~tp; "
                 "~b pending task(s) failed",
                 [Index, OsPid, Status, length(Failed)],
                 #{pyport_loop => Index}),
    {stop, {python_exit, Status}, State#state{port = undefined}}.

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
