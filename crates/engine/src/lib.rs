//! The deconfliction engine: activities, rules, spatio-temporal index, conflicts. Sans-IO.
