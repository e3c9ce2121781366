%% The options that make pyport comfortable from Elixir and for code ported
%% from erlang_python (docs/porting.md, docs/elixir.md): keyword lists as
%% kwargs, the per-call `none_atom`, eval's `locals`; options normalised
%% here once, at the API modules' edge, and nothing else (the module
%% reload of every loop is py_event_loop_pool:reload/1's).
-module(pyport_compat).

%% API.
-export([kwargs/1]).
-export([none_atom/1]).
-export([none_atom_opt/2]).
-export([eval_opts/1]).

%% The atoms Python's `None` may become; all three come back as `None`.
-type none_atom() :: none | nil | undefined.
-export_type([none_atom/0]).

%% API.

%% Kwargs as a map. A keyword list (`[{timeout, 5}]`, Elixir's `[timeout:
%% 5]`, and `[]`) becomes the map of its pairs; a key given twice is
%% refused, as Python refuses a keyword argument given twice. Anything
%% else is returned as it is, for the caller's own check to refuse.
-spec kwargs(term()) -> term().
kwargs(Map) when is_map(Map) ->
    Map;
kwargs([]) ->
    #{};
kwargs([{Key, _} | _] = List) when is_atom(Key) ->
    case keyword_map(List, #{}) of
        {ok, Map} -> Map;
        error -> error({badarg, {kwargs, List}})
    end;
kwargs(Other) ->
    Other.

%% Raises {badarg, {none_atom, Value}} unless Value is one of none_atom().
-spec none_atom(term()) -> none_atom().
none_atom(Atom) when Atom =:= none; Atom =:= nil; Atom =:= undefined -> Atom;
none_atom(Other) -> error({badarg, {none_atom, Other}}).

%% Extra task options with the `none_atom` of Opts (when given). It
%% travels as a binary: the atoms themselves arrive in Python as None.
-spec none_atom_opt(map(), map()) -> map().
none_atom_opt(#{none_atom := Atom}, Extra) ->
    Extra#{none_atom => atom_to_binary(none_atom(Atom), utf8)};
none_atom_opt(_, Extra) ->
    Extra.

%% The extra `{eval, Id, Expr, Opts}` options of eval's Opts: `locals`
%% (a map of bindings, or a keyword list; names are atoms or binaries)
%% and `none_atom`.
-spec eval_opts(map()) -> map().
eval_opts(Opts) ->
    Extra = case Opts of
                #{locals := Locals0} ->
                    Locals = kwargs(Locals0),
                    is_map(Locals) andalso
                        lists:all(fun(K) -> is_atom(K) orelse is_binary(K) end,
                                  maps:keys(Locals))
                        orelse error({badarg, {locals, Locals0}}),
                    #{locals => Locals};
                _ ->
                    #{}
            end,
    none_atom_opt(Opts, Extra).

%% Internal.

keyword_map([], Map) ->
    {ok, Map};
keyword_map([{Key, Value} | Rest], Map) when is_atom(Key), not is_map_key(Key, Map) ->
    keyword_map(Rest, Map#{Key => Value});
keyword_map(_, _) ->
    error.
