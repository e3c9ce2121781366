%% The atom budget of each loop: how many atoms that did not exist yet the
%% frames of loop Index have created on this node (pyport_term decodes
%% within what is left of the loop's `max_atoms`).
%%
%% Atoms are never collected, so the count must outlive the worker that
%% decoded them: it lives in a `counters` array created when the
%% application starts (persistent_term), not in the worker, so that a
%% port that crashes and restarts in a loop gets no fresh budget each
%% time. Only the loop's own worker adds to its counter.
-module(pyport_atoms).

%% API.
-export([init/1]).
-export([clear/0]).
-export([decode/4]).
-export([created/1]).
-export([init_pool/2]).

-define(KEY, {?MODULE, counters}).
-define(POOL_KEY(Pool), {?MODULE, pool, Pool}).

%% API.

%% Creates the counters of NumLoops loops, all zero (application start).
-spec init(pos_integer()) -> ok.
init(NumLoops) ->
    persistent_term:put(?KEY, {NumLoops, counters:new(NumLoops, [atomics])}).

%% The counters of a named pool's NumLoops loops (py_pool), made the
%% first time the pool starts and kept across its restarts, like the
%% default pool's across worker restarts.
-spec init_pool(atom(), pos_integer()) -> ok.
init_pool(Pool, NumLoops) ->
    case persistent_term:get(?POOL_KEY(Pool), undefined) of
        {NumLoops, _} -> ok;
        _ -> persistent_term:put(?POOL_KEY(Pool), {NumLoops, counters:new(NumLoops, [atomics])})
    end.

%% Forgets the counters (application stop), named pools' too.
-spec clear() -> ok.
clear() ->
    _ = persistent_term:erase(?KEY),
    _ = [persistent_term:erase(K) || {?POOL_KEY(_) = K, _} <- persistent_term:get()],
    ok.

%% Decodes Frame of loop Index (pyport_wire:decode/3) within what is left
%% of the loop's budget MaxAtoms, and charges the budget with the atoms it
%% created: the one place where a frame spends atoms.
-spec decode(binary(), pos_integer(), pyport_task:loop_index(), non_neg_integer())
    -> pyport_wire:decoded().
decode(Frame, MaxOutput, Index, MaxAtoms) ->
    case pyport_wire:decode(Frame, MaxOutput, left(Index, MaxAtoms)) of
        {ok, _, Created} = Decoded ->
            ok = add(Index, Created),
            Decoded;
        Refused ->
            Refused
    end.

%% How many new atoms loop Index may still create under Max.
-spec left(pyport_task:loop_index(), non_neg_integer()) -> non_neg_integer().
left(Index, Max) ->
    max(0, Max - created(Index)).

-spec add(pyport_task:loop_index(), non_neg_integer()) -> ok.
add(_Index, 0) ->
    ok;
add(Index, N) ->
    case counters_of(Index) of
        {ok, Ref} -> counters:add(Ref, slot(Index), N);
        error -> ok
    end.

%% The atoms loop Index has created so far; 0 when there are no counters
%% (the application is not running).
-spec created(pyport_task:loop_index()) -> non_neg_integer().
created(Index) ->
    case counters_of(Index) of
        {ok, Ref} -> counters:get(Ref, slot(Index));
        error -> 0
    end.

%% Internal.

counters_of({Pool, Index}) ->
    case persistent_term:get(?POOL_KEY(Pool), undefined) of
        {N, Ref} when Index =< N -> {ok, Ref};
        _ -> error
    end;
counters_of(Index) ->
    case persistent_term:get(?KEY, undefined) of
        {N, Ref} when Index =< N -> {ok, Ref};
        _ -> error
    end.

slot({_, Index}) -> Index;
slot(Index) -> Index.
