"""The component's entry point: `componentize-py componentize app` (./build.sh) builds
this module. It only hands the plugin to the helper, which exports it as the contract's
`plugin` interface; the plugin itself is in {{name_snake}}.py."""

from sluice_plugin.component import export

from {{name_snake}} import {{name_camel}}

Plugin, WitWorld = export({{name_camel}})
