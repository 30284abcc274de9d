"""The paper's system model as pure functions: parameters and their validation (``params``),
eq. 2 (``channel``), eqs. 3-9 (``costs``), their composition for a (user, encoder, RB) choice
(``link``) and the episode's physical draw (``instance``). Nothing here knows about agents,
tables or files."""
