%% pyport's events, telemetry-style, with OTP's own means only (no hex
%% dependency): a handler is a fun attached to event names; pyport calls
%% it in the process where the event happens, with measurements and
%% metadata maps (docs/operations.md lists the events). Handlers live in
%% persistent_term, keyed per event, so an event nobody listens to costs
%% one lookup; attaching and detaching are rare and take a node-local lock.
%% A handler that raises is detached and reported, so a broken handler
%% cannot break tasks: detached once and logged once, however many
%% processes were running it when it failed.
-module(py_telemetry).

%% API.
-export([attach/4]).
-export([detach/1]).
-export([list/0]).
-export([execute/3]).

%% Internal exports, for pyport's own modules.
-export([task_stop/4]).

-type event() :: [atom()].
-type handler() :: fun((event(), map(), map(), term()) -> term()).
-export_type([event/0, handler/0]).

-define(EVENT(E), {?MODULE, event, E}).
-define(HANDLERS, {?MODULE, handlers}).

%% API.

%% Calls Fun(Event, Measurements, Metadata, Config) for each of Events.
-spec attach(term(), [event()], handler(), term())
    -> ok | {error, already_exists}.
attach(Id, Events, Fun, Config) when is_list(Events), is_function(Fun, 4) ->
    lists:all(fun is_event/1, Events) orelse error({badarg, {events, Events}}),
    locked(fun() ->
                   Handlers = persistent_term:get(?HANDLERS, #{}),
                   case maps:is_key(Id, Handlers) of
                       true ->
                           {error, already_exists};
                       false ->
                           persistent_term:put(?HANDLERS, Handlers#{Id => Events}),
                           _ = [persistent_term:put(?EVENT(E), persistent_term:get(?EVENT(E), [])
                                                    ++ [{Id, Fun, Config}])
                                || E <- lists:usort(Events)],
                           ok
                   end
           end);
attach(Id, Events, Fun, _) ->
    error({badarg, {handler, Id, Events, Fun}}).

-spec detach(term()) -> ok | {error, not_found}.
detach(Id) ->
    locked(fun() ->
                   Handlers = persistent_term:get(?HANDLERS, #{}),
                   case maps:take(Id, Handlers) of
                       error ->
                           {error, not_found};
                       {Events, Rest} ->
                           persistent_term:put(?HANDLERS, Rest),
                           lists:foreach(fun(E) -> remove(E, Id) end, lists:usort(Events))
                   end
           end).

%% The attached handlers: {Id, Events}.
-spec list() -> [{term(), [event()]}].
list() ->
    lists:sort(maps:to_list(persistent_term:get(?HANDLERS, #{}))).

-spec execute(event(), map(), map()) -> ok.
execute(Event, Measurements, Metadata) ->
    case persistent_term:get(?EVENT(Event), []) of
        [] -> ok;
        Handlers -> run(Handlers, Event, Measurements, Metadata)
    end.

%% [pyport, task, stop], from the caller that awaited the task.
-spec task_stop(pyport_task:loop_index(), integer(), integer(), term()) -> ok.
task_stop(Loop, Latency, Queue, Result) ->
    case persistent_term:get(?EVENT([pyport, task, stop]), []) of
        [] ->
            ok;
        Handlers ->
            run(Handlers, [pyport, task, stop], #{duration_us => Latency, queue_us => Queue},
                #{loop => Loop, result => element(1, Result)})
    end.

%% Internal.

run(Handlers, Event, Measurements, Metadata) ->
    lists:foreach(
      fun({Id, Fun, Config}) ->
              try Fun(Event, Measurements, Metadata, Config) of
                  _ -> ok
              catch
                  Class:Reason:Stack ->
                      %% Every process running the handler meanwhile fails
                      %% too; only the one that detaches it reports.
                      detach_failed(Id) =:= ok andalso
                      logger:error("pyport: telemetry handler ~tp failed on ~tp and was "
                                   "detached: ~tp", [Id, Event, {Class, Reason, Stack}],
                                   #{pyport_telemetry => Id}),
                      ok
              end
      end, Handlers).

%% A failed handler's detach: those that see it gone already do not
%% queue for the lock (a burst of failures is one detach).
detach_failed(Id) ->
    case maps:is_key(Id, persistent_term:get(?HANDLERS, #{})) of
        true -> detach(Id);
        false -> {error, not_found}
    end.

remove(Event, Id) ->
    case [H || {I, _, _} = H <- persistent_term:get(?EVENT(Event), []), I =/= Id] of
        [] -> _ = persistent_term:erase(?EVENT(Event)), ok;
        Left -> persistent_term:put(?EVENT(Event), Left)
    end.

is_event(E) -> is_list(E) andalso E =/= [] andalso lists:all(fun is_atom/1, E).

%% The lock's requester is the calling process: with one requester for
%% every caller (the node, as before) global lets them all in at once.
locked(Fun) ->
    global:trans({?MODULE, self()}, Fun, [node()]).
