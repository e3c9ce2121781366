%% What the pyport suites share: starting the application with the test
%% helpers on Python's path, polling, OS process checks, and a logger
%% handler that forwards log events to a test process.
-module(pyport_ct).

-include_lib("stdlib/include/assert.hrl").

%% API.
-export([start/1]).
-export([stop/0]).
-export([helpers_dir/0]).
-export([wait_until/2]).
-export([os_pid_alive/1]).
-export([loop_stats/1]).
-export([await_restart/2]).
-export([stuck_kills_port/1]).
-export([capture_logs/0]).
-export([release_logs/0]).
-export([await_log/2]).
-export([flush_logs/0]).
-export([mailbox/0]).
-export([log_mentions/2]).

%% logger handler.
-export([log/2]).

-define(HANDLER, pyport_ct_capture).

%% API.

%% Starts pyport with Env (application environment pairs) on top of the
%% test helpers' python_path.
-spec start([{atom(), term()}]) -> ok.
start(Env) ->
    ok = load(),
    lists:foreach(fun({K, V}) -> ok = application:set_env(pyport, K, V) end,
                  [{python_path, [helpers_dir()]} | Env]),
    {ok, _} = application:ensure_all_started(pyport),
    ok.

-spec stop() -> ok.
stop() ->
    _ = application:stop(pyport),
    %% Every key a case set, so that none leaks into the next case or
    %% suite (send_allow or env would change what later suites see).
    lists:foreach(fun({K, _}) -> application:unset_env(pyport, K) end,
                  application:get_all_env(pyport)),
    ok.

%% ct/python, found from this module's source so that it does not matter
%% where rebar3 put the beams.
-spec helpers_dir() -> file:filename().
helpers_dir() ->
    Source = proplists:get_value(source, ?MODULE:module_info(compile)),
    filename:join(filename:dirname(Source), "python").

%% Polls Fun every 20 ms until it returns true; fails the case after
%% Timeout ms with what it last returned.
-spec wait_until(fun(() -> term()), non_neg_integer()) -> ok.
wait_until(Fun, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    wait_until(Fun, Deadline, undefined).

wait_until(Fun, Deadline, _Last) ->
    case Fun() of
        true ->
            ok;
        Other ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> ct:fail({wait_until_timed_out, Other});
                false -> timer:sleep(20), wait_until(Fun, Deadline, Other)
            end
    end.

%% A zombie is as good as gone: it runs nothing any more.
-spec os_pid_alive(integer()) -> boolean().
os_pid_alive(OsPid) ->
    Stat = "/proc/" ++ integer_to_list(OsPid) ++ "/stat",
    case file:read_file(Stat) of
        {ok, Bin} ->
            [_, AfterName] = string:split(Bin, ") ", trailing),
            not lists:member(binary:first(AfterName), [$Z, $X]);
        {error, _} ->
            false
    end.

-spec loop_stats(pos_integer()) -> map() | undefined.
loop_stats(Index) ->
    #{loops := Loops} = py_event_loop_pool:get_stats(),
    case [L || #{index := I} = L <- Loops, I =:= Index] of
        [L] -> L;
        [] -> undefined
    end.

%% Log events reach the calling process as {pyport_ct_log, Event}.
-spec capture_logs() -> ok.
capture_logs() ->
    _ = logger:remove_handler(?HANDLER),
    ok = logger:add_handler(?HANDLER, ?MODULE,
                            #{level => all, config => #{pid => self()}}).

-spec release_logs() -> ok.
release_logs() ->
    _ = logger:remove_handler(?HANDLER),
    flush_logs().

%% The first captured event for which Pred holds, within Timeout ms.
-spec await_log(fun((logger:log_event()) -> boolean()), timeout())
    -> logger:log_event().
await_log(Pred, Timeout) ->
    receive
        {pyport_ct_log, Event} ->
            case Pred(Event) of
                true -> Event;
                false -> await_log(Pred, Timeout)
            end
    after Timeout ->
        ct:fail(no_matching_log_event)
    end.

-spec flush_logs() -> ok.
flush_logs() ->
    receive
        {pyport_ct_log, _} -> flush_logs()
    after 0 -> ok
    end.

-spec mailbox() -> [term()].
mailbox() ->
    {messages, Messages} = process_info(self(), messages),
    Messages.

%% Whether the event's formatted message contains Needle.
-spec log_mentions(logger:log_event(), binary()) -> boolean().
log_mentions(#{msg := {string, S}}, Needle) ->
    contains(S, Needle);
log_mentions(#{msg := {report, R}}, Needle) ->
    contains(io_lib:format("~tp", [R]), Needle);
log_mentions(#{msg := {Format, Args}}, Needle) ->
    contains(io_lib:format(Format, Args), Needle).

%% logger handler.

-spec log(logger:log_event(), logger:handler_config()) -> ok.
log(Event, #{config := #{pid := Pid}}) ->
    Pid ! {pyport_ct_log, Event},
    ok.

%% Internal.

contains(Chars, Needle) ->
    binary:match(unicode:characters_to_binary(Chars), Needle) =/= nomatch.

%% Waits for loop Index to be served by a new OS process; returns its pid.
-spec await_restart(pos_integer(), integer()) -> integer().
await_restart(Index, OldOsPid) ->
    ok = wait_until(
           fun() ->
                   case loop_stats(Index) of
                       #{os_pid := P} -> P =/= OldOsPid;
                       undefined -> false
                   end
           end, 15000),
    #{os_pid := New} = loop_stats(Index),
    New.

%% Runs Stuck (a call that gets loop 1 stuck and returns what its caller
%% saw) while another caller waits on the same loop; checks that the port
%% is killed within the grace period's bound, that the bystander gets an
%% explicit error, and that a fresh port serves.
-spec stuck_kills_port(fun(() -> term())) -> ok.
stuck_kills_port(Stuck) ->
    #{os_pid := Old} = loop_stats(1),
    Self = self(),
    Bystander = spawn_link(fun() ->
                                   Self ! {self(), py_event_loop:run(pyport_ct_helpers, sleep_then,
                                                                     [60, never],
                                                                     #{timeout => 60000})}
                           end),
    ok = wait_until(
           fun() -> maps:get(pending, loop_stats(1)) >= 1 end, 5000),
    ?assertEqual({error, timeout}, Stuck()),
    receive
        {Bystander, Result} ->
            ?assertEqual({error, {python_exit, {killed, unresponsive}}}, Result)
    after 30000 ->
        ct:fail(bystander_not_answered)
    end,
    New = await_restart(1, Old),
    ?assertEqual({ok, New}, py_event_loop:run(pyport_ct_helpers, getpid, [])),
    ?assertEqual({ok, 4.0}, py_event_loop:run({pyport_loop, 1}, math, sqrt, [16.0], #{})),
    ok = pyport_ct_os:await_gone([Old], 5000),
    ?assertMatch(#{restarts := 1}, loop_stats(1)),
    ?assertEqual([], mailbox()),
    ok.

%% Loaded first, so that set_env is not undone by the load.
load() ->
    case application:load(pyport) of
        ok -> ok;
        {error, {already_loaded, pyport}} -> ok
    end.
