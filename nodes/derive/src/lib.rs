//! `#[derive(NodeParams)]` and `#[derive(ParamChoice)]` for vistaflow nodes.
//!
//! A node's params struct is the single source of its schema: each field's name, type, doc
//! comment, default and bounds become the `ParamSpec` that `vistaflow nodes` shows and the
//! engine checks at load. See `docs/adding-a-node.md`.
//!
//! Field attributes, `#[param(...)]`:
//! - `default = EXPR`: the value when the workflow leaves it out (any `Into<FieldType>`);
//!   `default_json = EXPR` gives it as JSON instead (when the type's own serialisation of the
//!   default would spell it differently, and so change cache keys).
//!   Without it a field is required, unless its type is an `Option` (absent = `None`).
//! - `min = N`, `max = N` (inclusive), `positive` (> 0), `multiple_of = N`: bounds on the
//!   number, or on each number of a list.
//! - `input_path` / `output_path`: a file the node reads / writes (resolved against the
//!   workflow's folder; digested for the cache key / checked after the run).
//! - `ty = EXPR`: the `ParamType` when the field's type does not say it.
//!
//! `#[serde(flatten)]` fields are groups of params shared by several nodes (their own
//! `NodeParams`). A struct attribute `#[params(check = path::to::fn)]` names a
//! `fn(&Self) -> Result<(), ParamError>` for checks across params.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::{parse_macro_input, Data, DeriveInput, Expr, Fields, LitStr, Path, Type};

#[proc_macro_derive(NodeParams, attributes(param, params))]
pub fn derive_node_params(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    node_params(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

#[proc_macro_derive(ParamChoice, attributes(choice))]
pub fn derive_param_choice(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    param_choice(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// What `#[param(...)]` says about one field.
#[derive(Default)]
struct FieldAttrs {
    default: Option<Expr>,
    default_json: Option<Expr>,
    min: Option<Expr>,
    max: Option<Expr>,
    positive: bool,
    multiple_of: Option<Expr>,
    path: Option<&'static str>,
    ty: Option<Expr>,
}

fn field_attrs(attrs: &[syn::Attribute]) -> syn::Result<FieldAttrs> {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("param")) {
        attr.parse_nested_meta(|m| {
            let key = m
                .path
                .get_ident()
                .map(|i| i.to_string())
                .unwrap_or_default();
            match key.as_str() {
                "default" => out.default = Some(m.value()?.parse()?),
                "default_json" => out.default_json = Some(m.value()?.parse()?),
                "min" => out.min = Some(m.value()?.parse()?),
                "max" => out.max = Some(m.value()?.parse()?),
                "multiple_of" => out.multiple_of = Some(m.value()?.parse()?),
                "ty" => out.ty = Some(m.value()?.parse()?),
                "positive" => out.positive = true,
                "input_path" => out.path = Some("InputPath"),
                "output_path" => out.path = Some("OutputPath"),
                _ => return Err(m.error(
                    "unknown param attribute: expected default, default_json, min, max, positive, \
                         multiple_of, input_path, output_path or ty",
                )),
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// The doc comment's lines joined into one line of prose.
fn doc_of(attrs: &[syn::Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("doc")) {
        if let syn::Meta::NameValue(nv) = &attr.meta {
            if let Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
            {
                let line = s.value().trim().to_string();
                if !line.is_empty() {
                    lines.push(line);
                }
            }
        }
    }
    lines.join(" ")
}

/// Whether the field carries `#[serde(flatten)]`.
fn is_flattened(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .any(|a| {
            let mut found = false;
            let _ = a.parse_args_with(|input: ParseStream| {
                while !input.is_empty() {
                    let tt: proc_macro2::TokenTree = input.parse()?;
                    if matches!(&tt, proc_macro2::TokenTree::Ident(i) if i == "flatten") {
                        found = true;
                    }
                }
                Ok(())
            });
            found
        })
}

fn struct_check(attrs: &[syn::Attribute]) -> syn::Result<Option<Path>> {
    let mut check = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("params")) {
        attr.parse_nested_meta(|m| {
            if m.path.is_ident("check") {
                check = Some(m.value()?.parse()?);
                Ok(())
            } else {
                Err(m.error("unknown params attribute: expected check = path::to::fn"))
            }
        })?;
    }
    Ok(check)
}

fn node_params(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            name,
            "NodeParams: only structs with named fields",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(
            name,
            "NodeParams: only structs with named fields",
        ));
    };
    let krate = quote!(::vistaflow_nodes::params);
    let mut specs = Vec::new();
    let mut nested_checks = Vec::new();
    for f in &fields.named {
        let ident = f.ident.as_ref().expect("named field");
        let ty: &Type = &f.ty;
        if is_flattened(&f.attrs) {
            specs.push(quote!(out.extend(<#ty as #krate::NodeParams>::specs());));
            nested_checks.push(quote!(#krate::NodeParams::check(&self.#ident)?;));
            continue;
        }
        let a = field_attrs(&f.attrs)?;
        let pname = LitStr::new(&ident.unraw().to_string(), ident.span());
        let doc = doc_of(&f.attrs);
        if doc.is_empty() {
            return Err(syn::Error::new_spanned(
                ident,
                "NodeParams: every param needs a doc comment (`vistaflow nodes` shows it)",
            ));
        }
        let doc = LitStr::new(&doc, Span::call_site());
        let param_type = match (&a.ty, a.path) {
            (Some(e), _) => quote!(#e),
            (None, Some(p)) => {
                let p = syn::Ident::new(p, Span::call_site());
                quote!(#krate::ParamType::#p)
            }
            (None, None) => quote!(<#ty as #krate::ParamKind>::param_type()),
        };
        let default = match (&a.default, &a.default_json) {
            (_, Some(e)) => quote!(Some(#e)),
            (Some(e), None) => quote!(Some(#krate::default_json::<#ty, _>(#e))),
            (None, None) if is_option(ty) => quote!(Some(::serde_json::Value::Null)),
            (None, None) => quote!(None),
        };
        let mut bounds = vec![if a.ty.is_some() || a.path.is_some() {
            quote!(let mut b = #krate::Bounds::default();)
        } else {
            quote!(let mut b = <#ty as #krate::ParamKind>::bounds();)
        }];
        if let Some(e) = &a.min {
            bounds.push(quote!(b.min = Some((#e) as f64);));
        }
        if let Some(e) = &a.max {
            bounds.push(quote!(b.max = Some((#e) as f64);));
        }
        if a.positive {
            bounds.push(quote!(b.positive = true;));
        }
        if let Some(e) = &a.multiple_of {
            bounds.push(quote!(b.multiple_of = Some((#e) as u64);));
        }
        specs.push(quote! {
            out.push(#krate::ParamSpec {
                name: #pname,
                ty: #param_type,
                default: #default,
                doc: #doc,
                bounds: { #(#bounds)* b },
            });
        });
    }
    let user_check = struct_check(&input.attrs)?.map(|p| quote!(#p(self)?;));
    let (impl_g, ty_g, where_g) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_g #krate::NodeParams for #name #ty_g #where_g {
            fn specs() -> ::std::vec::Vec<#krate::ParamSpec> {
                let mut out = ::std::vec::Vec::new();
                #(#specs)*
                out
            }
            fn check(&self) -> ::std::result::Result<(), #krate::ParamError> {
                #(#nested_checks)*
                #user_check
                Ok(())
            }
        }
    })
}

/// Whether a field's type is `Option<...>`: absent means `None`, so the param is optional.
fn is_option(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Option"))
}

/// `FooBar` -> `foo_bar`, `Fp16` -> `fp16`.
fn snake_case(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn param_choice(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            name,
            "ParamChoice: only enums of unit variants",
        ));
    };
    let mut idents = Vec::new();
    let mut texts = Vec::new();
    for v in &data.variants {
        if !matches!(v.fields, Fields::Unit) {
            return Err(syn::Error::new_spanned(
                v,
                "ParamChoice: only unit variants",
            ));
        }
        let mut text = snake_case(&v.ident.to_string());
        for attr in v.attrs.iter().filter(|a| a.path().is_ident("choice")) {
            attr.parse_nested_meta(|m| {
                if m.path.is_ident("name") {
                    text = m.value()?.parse::<LitStr>()?.value();
                    Ok(())
                } else {
                    Err(m.error("unknown choice attribute: expected name = \"...\""))
                }
            })?;
        }
        idents.push(&v.ident);
        texts.push(LitStr::new(&text, v.ident.span()));
    }
    let krate = quote!(::vistaflow_nodes::params);
    Ok(quote! {
        impl #name {
            /// Every value, as written in a workflow.
            pub const CHOICES: &'static [&'static str] = &[#(#texts),*];
            /// The value as written in a workflow.
            pub fn as_str(&self) -> &'static str {
                match self { #(Self::#idents => #texts,)* }
            }
        }
        impl #krate::ParamKind for #name {
            fn param_type() -> #krate::ParamType {
                #krate::ParamType::Choice(Self::CHOICES)
            }
        }
        impl ::std::str::FromStr for #name {
            type Err = ::std::string::String;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                match s {
                    #(#texts => Ok(Self::#idents),)*
                    other => Err(::std::format!(
                        "unknown `{}`: expected one of {}", other, Self::CHOICES.join("|")
                    )),
                }
            }
        }
        impl ::std::fmt::Display for #name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl ::serde::Serialize for #name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> ::serde::Deserialize<'de> for #name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                let s = <::std::string::String as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }
    })
}
