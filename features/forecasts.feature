@local
Feature: Forecasts match the released model for every horizon a planner may ask for
  The service must forecast exactly what the model from the build stage forecasts: the same values,
  for the periods right after the training data, each inside its prediction interval, never negative demand.

  Background:
    Given the forecasting service is deployed
    And the model card of the deployed model

  Scenario Outline: A forecast of <horizon> matches the released model
    When a planner asks for a forecast of <horizon>
    Then the forecast covers exactly <horizon>
    And its periods follow the training data without a gap
    And its values equal the model's reference forecasts
    And no value predicts negative demand
    And every prediction interval contains its forecast

    @smoke
    Examples: The next period
      | horizon    |
      | one period |

    @regression
    Examples: Planning horizons
      | horizon             |
      | one season          |
      | the maximum horizon |
