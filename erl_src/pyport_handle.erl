%% The bookkeeping of object handles (docs/handles.md): the handle term,
%% finding handles in a task's arguments, and who owns which handle.
%%
%% A loop's handles live in two public tables made by its worker with the
%% port (so they go with it): `owners` {N, OwnerPid} and `by_owner`
%% {{OwnerPid, N}}, ordered by owner so that a dead owner's handles are
%% found by key prefix, like a dead caller's tasks in `by_caller`. The
%% worker writes them when it routes a result carrying handles and when an
%% owner dies; an owner writes them when it releases or transfers.
%%
%% What the port reports is untrusted: a reply names handle numbers, and
%% only numbers (positive integers, at most the loop's max_handles of them
%% at once) are taken from it; the #py_obj{} terms are built here with the
%% loop's own index and incarnation.
-module(pyport_handle).

-include("pyport_handle.hrl").

%% API, for py_event_loop, py_event_loop_pool and py_obj.
-export([task_opts/4]).
-export([live/1]).
-export([release/2]).
-export([transfer/3]).
-export([share/3]).
%% For pyport_worker.
-export([new/2]).
-export([setup_info/1]).
-export([routed/5]).
-export([owner_down/2]).
-export([count/1]).

-type tables() :: #{incarnation := reference(),
                    owners := ets:tid(),
                    by_owner := ets:tid(),
                    max := non_neg_integer(),
                    %% What one process may own (max_handles_per_owner).
                    max_per_owner := non_neg_integer()}.
-type handle() :: #py_obj{}.
%% Where a task may run (task_opts/4).
-type where() :: {fixed | default, pyport_calls:loop_index()}.
-type error() :: stale_handle | not_owner
               | {handle_owner_limit, non_neg_integer()}
               | {foreign_handle, {loop, pyport_calls:loop_index()} | {node, node()}}
               | mixed_loops.
-export_type([tables/0, handle/0, error/0, where/0]).

%% The atom Python puts where a reply carries handle N: {'$pyport_handle', N}.
-define(MARKER, '$pyport_handle').

%% API.

%% Where a task runs, and the task options its handles need: the `result`
%% option (handle | auto), and `handle_args => true` when its arguments
%% hold handles, all of which must be live handles of one loop. Where is
%% `{fixed, Index}`, the loop the caller named, which the handles must be
%% of; or `{default, Index}` (the pool): the handles' loop, or else Index.
%% One search of the arguments routes and checks (every task's arguments
%% are searched).
-spec task_opts(where(), list(), map(), map())
    -> {ok, pyport_calls:loop_index(), map()} | {error, error()}.
task_opts(Where, Args, Kwargs, Opts) ->
    Extra = result_opts(Opts),
    case find([Args, Kwargs]) of
        none ->
            {_, Index} = Where,
            {ok, Index, Extra};
        {found, #py_obj{incarnation = Inc}, _} when node(Inc) =/= node() ->
            {error, {foreign_handle, {node, node(Inc)}}};
        {found, #py_obj{loop = L}, _} when element(1, Where) =:= fixed, Where =/= {fixed, L} ->
            {error, {foreign_handle, {loop, L}}};
        {found, #py_obj{loop = L} = Obj, Ids} ->
            case live(Obj) of
                {ok, Loop} ->
                    case usable(pyport_calls:handles(Loop), self(), Ids) of
                        ok -> {ok, L, Extra#{handle_args => true}};
                        {error, _} = Error -> Error
                    end;
                {error, _} = Error ->
                    Error
            end;
        mixed ->
            {error, mixed_loops}
    end.

%% The loop of a handle whose port is still the one that made it.
-spec live(term()) -> {ok, pyport_calls:loop()} | {error, stale_handle}.
live(#py_obj{loop = Index, incarnation = Inc}) when is_integer(Index), Index > 0;
                                                  is_tuple(Index) ->
    case pyport_registry:lookup(Index) of
        {ok, Loop} ->
            case pyport_calls:handles(Loop) of
                #{incarnation := Inc} -> {ok, Loop};
                _ -> {error, stale_handle}
            end;
        _ ->
            {error, stale_handle}
    end;
live(Other) ->
    error({badarg, {handle, Other}}).

%% Drops the caller's handle: its table entry goes at once, and the port
%% drops the object (the worker sends the packet if the port is busy).
-spec release(handle(), pid()) -> ok | {error, stale_handle | not_owner}.
release(#py_obj{id = N} = Obj, Owner) ->
    case owned(Obj, Owner) of
        {ok, Loop} ->
            disown(pyport_calls:handles(Loop), Owner, N),
            %% A closed port has taken the object with it.
            _ = pyport_calls:send(Loop, pyport_wire:obj_release([N])),
            ok;
        {error, _} = Error ->
            Error
    end.

%% Lets To use a handle Owner owns (as task arguments and through
%% py_obj) until To exits or the handle goes; ownership (release,
%% transfer) stays with Owner.
-spec share(handle(), pid(), pid()) -> ok | {error, stale_handle | not_owner}.
share(#py_obj{} = Obj, Owner, Owner) ->
    case owned(Obj, Owner) of
        {ok, _} -> ok;
        {error, _} = Error -> Error
    end;
share(#py_obj{id = N} = Obj, Owner, To) ->
    case owned(Obj, Owner) of
        {ok, Loop} ->
            #{by_owner := ByOwner} = pyport_calls:handles(Loop),
            %% An owner row of To (a handle transferred to To and back)
            %% is not replaced: insert_new.
            _ = ets:insert_new(ByOwner, {{To, N}, shared}),
            pyport_calls:watch(Loop, To);
        {error, _} = Error ->
            Error
    end.

%% Makes To the owner of a handle Owner owns; the worker monitors To, so
%% the handle goes when To exits (at once if To is already dead).
-spec transfer(handle(), pid(), pid())
    -> ok | {error, stale_handle | not_owner | {handle_owner_limit, non_neg_integer()}}.
transfer(#py_obj{} = Obj, Owner, Owner) ->
    %% To oneself: nothing changes (the by_owner row must stay, or the
    %% owner's exit would not release the handle).
    case owned(Obj, Owner) of
        {ok, _} -> ok;
        {error, _} = Error -> Error
    end;
transfer(#py_obj{id = N} = Obj, Owner, To) ->
    case owned(Obj, Owner) of
        {ok, Loop} ->
            #{owners := Owners, by_owner := ByOwner, max_per_owner := PerOwner} = T =
                pyport_calls:handles(Loop),
            case owned_count(T, To) >= PerOwner of
                true ->
                    {error, {handle_owner_limit, PerOwner}};
                false ->
                    true = ets:insert(ByOwner, {{To, N}}),
                    true = ets:insert(Owners, {N, To}),
                    true = ets:delete(ByOwner, {Owner, N}),
                    %% Always asked: To's 'DOWN' may have been handled
                    %% already, and the worker monitors each process once.
                    pyport_calls:watch(Loop, To)
            end;
        {error, _} = Error ->
            Error
    end.

%% For pyport_worker.

-spec new(non_neg_integer(), non_neg_integer()) -> tables().
new(Max, MaxPerOwner) ->
    #{incarnation => make_ref(),
      owners => ets:new(py_handle_owners, [set, public, {read_concurrency, true}]),
      by_owner => ets:new(py_handle_by_owner, [ordered_set, public]),
      max => Max,
      max_per_owner => MaxPerOwner}.

%% What the port is told in `setup`.
-spec setup_info(tables()) -> map().
setup_info(#{incarnation := Inc, max := Max}) ->
    #{handle_incarnation => Inc, handle_max => Max}.

%% A `{result, Ref, {handles, Value, Ns}}` from the port, whose entry
%% the worker has taken (pyport_calls:take/2): the caller becomes the
%% owner of the new handles in Ns and gets Value with each
%% {'$pyport_handle', N} replaced by its #py_obj{}. Returns the numbers the
%% port must drop (no caller any more, the loop's limit, a bad reply).
-spec routed(pyport_calls:taken(), reference(), term(), term(),
             {pyport_calls:loop_index(), tables()}) -> [pos_integer()].
routed(Taken, Ref, Value, Ns, {Index, #{max := Max} = T}) ->
    Numbers = numbers(Ns, Max),
    case Taken of
        {call, Caller} ->
            case Numbers of
                bad ->
                    Ref ! {Ref, {error, {bad_reply, handles}}},
                    [];
                _ ->
                    case own(T, Caller, Numbers) of
                        ok ->
                            Set = maps:from_keys(Numbers, true),
                            Ref ! {Ref, {ok, replace(Value, Set, Index, T)}},
                            [];
                        {limit, Error, New} ->
                            Ref ! {Ref, {error, Error}},
                            %% Only the numbers made for this reply: the
                            %% others are live handles of their owners.
                            New
                    end
            end;
        _ when Numbers =:= bad ->
            [];
        _ ->
            %% The caller gave up or died: nobody can own these.
            [N || N <- Numbers, not ets:member(maps:get(owners, T), N)]
    end.

%% The handles Pid owned, now released (the worker tells the port).
-spec owner_down(pid(), tables()) -> [pos_integer()].
owner_down(Pid, #{owners := Owners, by_owner := ByOwner}) ->
    Ns = ets:select(ByOwner, [{{{Pid, '$1'}}, [], ['$1']}]),
    true = ets:match_delete(ByOwner, {{Pid, '_'}}),
    %% What was shared with it goes too (and stays with its owners).
    true = ets:match_delete(ByOwner, {{Pid, '_'}, shared}),
    lists:foreach(fun(N) -> ets:delete(Owners, N) end, Ns),
    Ns.

%% Live handles of a loop.
-spec count(tables() | undefined) -> non_neg_integer().
count(#{owners := Owners}) ->
    case ets:info(Owners, size) of
        undefined -> 0;
        Size -> Size
    end;
count(undefined) ->
    0.

%% Internal.

%% The `result` option as the port takes it (term is the default).
result_opts(#{result := Mode}) when Mode =:= handle; Mode =:= auto -> #{result => Mode};
result_opts(#{result := term}) -> #{};
result_opts(#{result := Other}) -> error({badarg, {result, Other}});
result_opts(_) -> #{}.

%% The first handle in Term, or mixed when handles of several ports are
%% there. Binaries and other leaves are not looked into.
find(Term) ->
    try find(Term, none) of
        Found -> Found
    catch
        throw:mixed -> mixed
    end.

find(#py_obj{loop = L, incarnation = I, id = N} = Obj, Found) when is_reference(I) ->
    case Found of
        none -> {found, Obj, [N]};
        {found, #py_obj{loop = L, incarnation = I} = First, Ids} -> {found, First, [N | Ids]};
        _ -> throw(mixed)
    end;
find([H | T], Found) ->
    find(T, find(H, Found));
find(Tuple, Found) when is_tuple(Tuple) ->
    %% Element by element: every task's arguments are searched, and a
    %% list copy of each tuple would cost the tasks that hold no handle.
    find_elements(Tuple, tuple_size(Tuple), Found);
find(Map, Found) when is_map(Map), map_size(Map) =:= 0 ->
    Found;
find(Map, Found) when is_map(Map) ->
    maps:fold(fun(_, V, F) -> find(V, F) end, Found, Map);
find(_, Found) ->
    Found.

find_elements(_Tuple, 0, Found) ->
    Found;
find_elements(Tuple, I, Found) ->
    find_elements(Tuple, I - 1, find(element(I, Tuple), Found)).

owned(#py_obj{id = N} = Obj, Owner) ->
    case live(Obj) of
        {ok, Loop} ->
            #{owners := Owners} = pyport_calls:handles(Loop),
            case ets:lookup(Owners, N) of
                [{N, Owner}] -> {ok, Loop};
                [_] -> {error, not_owner};
                [] -> {error, stale_handle}
            end;
        {error, _} = Error ->
            Error
    end.

disown(#{owners := Owners, by_owner := ByOwner}, Owner, N) ->
    true = ets:delete(Owners, N),
    true = ets:delete(ByOwner, {Owner, N}).

%% Handle numbers from the port: a proper list of positive integers, no
%% longer than the loop may hold.
numbers(Ns, Max) when is_list(Ns) ->
    try length(Ns) of
        Len when Len =< Max ->
            case lists:all(fun(N) -> is_integer(N) andalso N > 0 end, Ns) of
                true -> lists:usort(Ns);
                false -> bad
            end;
        _ ->
            bad
    catch
        error:badarg -> bad
    end;
numbers(_, _) ->
    bad.

%% Numbers the loop already has (a handle the port sends again) keep
%% their owner; new ones count against the loop's limit and the owner's.
own(#{owners := Owners, by_owner := ByOwner, max := Max,
      max_per_owner := PerOwner} = T, Owner, Numbers) ->
    New = [N || N <- Numbers, not ets:member(Owners, N)],
    case ets:info(Owners, size) + length(New) > Max of
        true ->
            {limit, {handle_limit, Max}, New};
        false when New =/= [] ->
            case owned_count(T, Owner) + length(New) > PerOwner of
                true ->
                    {limit, {handle_owner_limit, PerOwner}, New};
                false ->
                    true = ets:insert(ByOwner, [{{Owner, N}} || N <- New]),
                    true = ets:insert(Owners, [{N, Owner} || N <- New]),
                    ok
            end;
        false ->
            true = ets:insert(ByOwner, [{{Owner, N}} || N <- New]),
            true = ets:insert(Owners, [{N, Owner} || N <- New]),
            ok
    end.

%% Whether Pid owns, or was shared, each live handle number in Ns (a row
%% keyed {Pid, N} in by_owner is either): a released one is stale, one of
%% another owner's not Pid's to use.
usable(_, _, []) ->
    ok;
usable(#{owners := Owners, by_owner := ByOwner} = T, Pid, [N | Ns]) ->
    case ets:lookup(Owners, N) of
        [] -> {error, stale_handle};
        [{N, Pid}] -> usable(T, Pid, Ns);
        [_] ->
            case ets:member(ByOwner, {Pid, N}) of
                true -> usable(T, Pid, Ns);
                false -> {error, not_owner}
            end
    end.

%% The handles Owner holds on this loop (a key-prefix count: by_owner is
%% ordered by owner).
owned_count(#{by_owner := ByOwner}, Owner) ->
    ets:select_count(ByOwner, [{{{Owner, '_'}}, [], [true]}]).

replace({?MARKER, N} = Marker, Set, Index, #{incarnation := Inc}) ->
    case Set of
        #{N := _} -> #py_obj{loop = Index, incarnation = Inc, id = N};
        _ -> Marker
    end;
replace([H | T], Set, Index, Tables) ->
    [replace(H, Set, Index, Tables) | replace(T, Set, Index, Tables)];
replace(Tuple, Set, Index, Tables) when is_tuple(Tuple) ->
    list_to_tuple(replace(tuple_to_list(Tuple), Set, Index, Tables));
replace(Map, Set, Index, Tables) when is_map(Map) ->
    maps:map(fun(_, V) -> replace(V, Set, Index, Tables) end, Map);
replace(Other, _, _, _) ->
    Other.
